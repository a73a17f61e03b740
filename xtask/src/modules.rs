//! `cargo xtask modules`: no import loops between the modules of a crate.
//!
//! A loop (`a` uses `b` and `b` uses `a`, directly or around several
//! modules) means none of its modules can be read, tested or moved without
//! the others: the split into modules is only on the surface. `cargo xtask
//! test` runs this check in its lint stage, right after rustfmt and before
//! clippy or any build; `cargo xtask modules` runs it alone (`--edges` also
//! lists every edge).
//!
//! The graph, one per crate (the `src` directory of every workspace member):
//!
//! - Nodes are the module files: `a/b.rs` and `a/b/mod.rs` are `a::b`,
//!   `main.rs` and `lib.rs` the crate root. An inline module (`mod x {}`)
//!   belongs to the file it is written in.
//! - Edges are the paths in `use` trees, and any other paths (in code,
//!   types, attributes, macro arguments) that start with `crate::`,
//!   `super::` or `self::`, each resolved to the longest module it names.
//!   Other paths (`std::..`, other crates, names a `use` brought in) add
//!   nothing of their own: the `use` that brought the name in counted.
//! - An edge from a module into itself or its own descendants is the module
//!   tree itself, not an import loop, and is ignored. (So the crate root,
//!   every module's ancestor, is never part of a loop.)
//! - Items under `#[cfg(test)]` (or `#[cfg(all(test, ..))]`) are skipped:
//!   inline `mod tests {}`, test-only `use`s and functions, and the files of
//!   out-of-line `#[cfg(test)] mod x;` modules. Tests may reach wherever
//!   they need.
//! - Visibility paths (`pub(in crate::a)`, `pub(super)`) say who may see an
//!   item, not what it uses, and are ignored.
//!
//! Not handled: `#[path = ".."]` on a `mod` (no crate here uses one; such a
//! file would count under the name its location gives it), `#[cfg(test)]`
//! on statements and expressions (only on items), and targets outside
//! `src` (the integration tests under tests/kernel and tests/replay).
//! A binary with a crate root of its own, `src/bin/<name>/main.rs` and the
//! files beside it, is read as a graph of its own (its `crate::` is not the
//! library's); single-file `src/bin/<name>.rs` ones cannot loop and are
//! left out.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::{
    Attribute, ImplItem, Item, Meta, Token, TraitItem, UseTree, punctuated::Punctuated,
    visit::Visit,
};

use crate::cmd;

/// `cargo xtask modules` options.
#[derive(clap::Args)]
pub struct Options {
    /// Also print every edge of every crate's graph, with the path that
    /// made it.
    #[arg(long)]
    edges: bool,
}

/// `cargo xtask modules`.
pub fn task(opts: &Options) -> Result<()> {
    let root = cmd::root();
    if opts.edges {
        for src in crate_src_dirs(&root)? {
            let label = label(&root, &src);
            for (from, to, why) in Graph::read(&src)?.edges() {
                println!("{label}: {} -> {} ({why})", name(from), name(to));
            }
        }
    }
    check(&root)
}

/// Checks every workspace crate under `root`: prints each loop as
/// `crate/src: cycle among a, b::c` with the edges that close it, then
/// `module cycles: N`; fails if N is not 0.
pub fn check(root: &Path) -> Result<()> {
    let mut found = 0;
    for src in crate_src_dirs(root)? {
        let graph = Graph::read(&src)?;
        let cycles = graph.cycles();
        found += cycles.len();
        print!("{}", report(&label(root, &src), &graph, &cycles));
    }
    println!("module cycles: {found}");
    if found > 0 {
        bail!("{found} import loop(s) between modules; see above");
    }
    Ok(())
}

/// The source directories of the workspace's crates, sorted: each
/// member's `src`, and each binary of its own under `src/bin/<name>/`.
fn crate_src_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .current_dir(root)
        .exec()
        .context("cargo metadata")?;
    let mut dirs = Vec::new();
    for package in metadata.workspace_packages() {
        let Some(dir) = package.manifest_path.parent() else {
            continue;
        };
        let src = dir.join("src").into_std_path_buf();
        if !src.is_dir() {
            continue;
        }
        if let Ok(bins) = fs::read_dir(src.join(BIN)) {
            for bin in bins {
                let bin = bin?.path();
                if bin.join("main.rs").is_file() {
                    dirs.push(bin);
                }
            }
        }
        dirs.push(src);
    }
    dirs.sort();
    Ok(dirs)
}

/// Where cargo looks for binaries with crate roots of their own.
const BIN: &str = "bin";

/// `sensor/src` for `<root>/sensor/src`.
fn label(root: &Path, src: &Path) -> String {
    src.strip_prefix(root).unwrap_or(src).display().to_string()
}

/// A module by its path from the crate root; empty for the root.
type Module = Vec<String>;

/// `a::b`, or `<root>`.
fn name(m: &Module) -> String {
    if m.is_empty() {
        "<root>".to_owned()
    } else {
        m.join("::")
    }
}

/// The cycles as lines: each with the edges inside it, indented.
fn report(label: &str, graph: &Graph, cycles: &[Vec<Module>]) -> String {
    let mut out = String::new();
    for cycle in cycles {
        let names: Vec<String> = cycle.iter().map(name).collect();
        out += &format!("{label}: cycle among {}\n", names.join(", "));
        for (from, to, why) in graph.edges() {
            if cycle.contains(from) && cycle.contains(to) {
                out += &format!("    {} -> {} ({why})\n", name(from), name(to));
            }
        }
    }
    out
}

/// One crate's modules and the edges between them.
#[derive(Debug, Default)]
struct Graph {
    /// Every module with what it uses outside its own subtree, each target
    /// with the first path that used it (`crate::b::X in a.rs`).
    edges: BTreeMap<Module, BTreeMap<Module, String>>,
}

impl Graph {
    /// Parses every `.rs` file under `src` (a crate's source directory).
    fn read(src: &Path) -> Result<Self> {
        let mut files = Vec::new();
        rust_files(src, &mut files)?;
        files.sort();
        // Parse everything first: a file's `#[cfg(test)] mod x;` takes
        // another file out of the graph.
        let mut parsed = Vec::new();
        let mut test_only = Vec::new();
        for file in files {
            let module = module_of(src, &file);
            let text =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let ast =
                syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))?;
            let mut refs = Refs {
                scope: module.clone(),
                ..Refs::default()
            };
            refs.visit_file(&ast);
            test_only.append(&mut refs.test_modules);
            let shown = file
                .strip_prefix(src)
                .unwrap_or(&file)
                .display()
                .to_string();
            parsed.push((module, shown, refs.paths));
        }
        let is_test = |m: &Module| test_only.iter().any(|t| m.starts_with(t));
        let mut graph = Graph::default();
        for (module, _, _) in &parsed {
            if !is_test(module) {
                graph.edges.entry(module.clone()).or_default();
            }
        }
        // The root is every module's ancestor, with or without a file.
        graph.edges.entry(Module::new()).or_default();
        for (module, shown, paths) in parsed {
            if is_test(&module) {
                continue;
            }
            for (path, written) in paths {
                let target = graph.longest_known(&path);
                // Into itself or its descendants: the module tree, not a loop.
                if target.starts_with(&module) {
                    continue;
                }
                graph
                    .edges
                    .get_mut(&module)
                    .expect("every file's module is a node")
                    .entry(target)
                    .or_insert_with(|| format!("{written} in {shown}"));
            }
        }
        Ok(graph)
    }

    /// The longest prefix of `path` that is a module of this crate.
    fn longest_known(&self, path: &[String]) -> Module {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| self.edges.contains_key(m))
            .unwrap_or_default()
    }

    /// Every edge with the path that made it, in order.
    fn edges(&self) -> impl Iterator<Item = (&Module, &Module, &String)> {
        self.edges
            .iter()
            .flat_map(|(from, to)| to.iter().map(move |(to, why)| (from, to, why)))
    }

    /// The strongly connected components of more than one module (Tarjan),
    /// each sorted, in order.
    fn cycles(&self) -> Vec<Vec<Module>> {
        let nodes: Vec<&Module> = self.edges.keys().collect();
        let id = |m: &Module| nodes.binary_search(&m).expect("edges end at nodes");
        let next: Vec<Vec<usize>> = self
            .edges
            .values()
            .map(|to| to.keys().map(id).collect())
            .collect();
        let mut tarjan = Tarjan {
            next: &next,
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            stack: Vec::new(),
            on_stack: vec![false; nodes.len()],
            counter: 0,
            components: Vec::new(),
        };
        for v in 0..nodes.len() {
            if tarjan.index[v].is_none() {
                tarjan.connect(v);
            }
        }
        let mut cycles: Vec<Vec<Module>> = tarjan
            .components
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut c: Vec<Module> = c.into_iter().map(|v| nodes[v].clone()).collect();
                c.sort();
                c
            })
            .collect();
        cycles.sort();
        cycles
    }
}

/// Tarjan's strongly connected components over node ids.
struct Tarjan<'a> {
    next: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    stack: Vec<usize>,
    on_stack: Vec<bool>,
    counter: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    /// Recursive: module graphs are shallow (tens of nodes).
    fn connect(&mut self, v: usize) {
        self.index[v] = Some(self.counter);
        self.low[v] = self.counter;
        self.counter += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.next[v] {
            match self.index[w] {
                None => {
                    self.connect(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        // `src/bin/<name>/` is a crate of its own, read on its own.
        let other_crate = path.file_name() == Some(BIN.as_ref())
            && path.parent().is_some_and(|p| p.ends_with("src"));
        if path.is_dir() && !other_crate {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `a/b.rs` and `a/b/mod.rs` are `a::b`; `main.rs` and `lib.rs` the root.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut module: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if module.last().is_some_and(|l| l == "mod") {
        module.pop();
    }
    if module == ["main"] || module == ["lib"] {
        module.clear();
    }
    module
}

/// The first segments that make a path the crate's own.
const LOCAL: [&str; 3] = ["crate", "super", "self"];

/// What one file's syntax refers to.
#[derive(Default)]
struct Refs {
    /// The module the visitor is in: the file's, plus any inline modules.
    scope: Module,
    /// Every local path, made absolute (from the crate root), with the
    /// path as written.
    paths: Vec<(Module, String)>,
    /// Out-of-line modules declared under `#[cfg(test)]`.
    test_modules: Vec<Module>,
}

impl Refs {
    /// Records `segments` if they start with `crate`, `super` or `self`.
    fn record(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        if !LOCAL.contains(&first.as_str()) {
            return;
        }
        let mut absolute = if first == "crate" {
            Module::new()
        } else {
            self.scope.clone()
        };
        let mut rest = &segments[usize::from(first == "crate")..];
        while let Some((head, tail)) = rest.split_first() {
            match head.as_str() {
                "super" => drop(absolute.pop()),
                "self" => {}
                _ => break,
            }
            rest = tail;
        }
        absolute.extend(rest.iter().cloned());
        self.paths.push((absolute, segments.join("::")));
    }

    /// Records every path of a `use` tree: `use super::{a, b::{c}}` is
    /// `super::a` and `super::b::c`.
    fn use_tree(&mut self, tree: &UseTree, prefix: &mut Vec<String>) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix);
                prefix.pop();
            }
            UseTree::Name(n) => self.use_leaf(&n.ident, prefix),
            UseTree::Rename(r) => self.use_leaf(&r.ident, prefix),
            UseTree::Glob(_) => self.record(prefix),
            UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(tree, prefix);
                }
            }
        }
    }

    /// `a::b` in `use a::b` or `use a::b as c`; `a` in `use a::{self}`.
    fn use_leaf(&mut self, ident: &syn::Ident, prefix: &[String]) {
        if ident == "self" {
            self.record(prefix);
        } else {
            let mut path = prefix.to_vec();
            path.push(ident.to_string());
            self.record(&path);
        }
    }

    /// Local paths in tokens syn leaves unparsed (macro arguments and
    /// attribute arguments): `crate::a::b`, `super::x`, `$crate::y`.
    fn tokens(&mut self, stream: TokenStream) {
        let tokens: Vec<TokenTree> = stream.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(first) if LOCAL.iter().any(|l| first == l) => {
                    let mut segments = vec![first.to_string()];
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
                    {
                        if a.as_char() != ':' || a.spacing() != Spacing::Joint || b.as_char() != ':'
                        {
                            break;
                        }
                        segments.push(next.to_string());
                        i += 3;
                    }
                    if segments.len() > 1 {
                        self.record(&segments);
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Refs {
    fn visit_item(&mut self, item: &'ast Item) {
        if test_only(item_attrs(item)) {
            if let Item::Mod(m) = item
                && m.content.is_none()
            {
                let mut module = self.scope.clone();
                module.push(m.ident.to_string());
                self.test_modules.push(module);
            }
            return;
        }
        match item {
            // `use ::x` names another crate.
            Item::Use(u) if u.leading_colon.is_some() => {}
            Item::Use(u) => self.use_tree(&u.tree, &mut Vec::new()),
            Item::Mod(m) => {
                // An out-of-line module is a file of its own, a node.
                if let Some((_, items)) = &m.content {
                    self.scope.push(m.ident.to_string());
                    for item in items {
                        self.visit_item(item);
                    }
                    self.scope.pop();
                }
            }
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_impl_item(&mut self, item: &'ast ImplItem) {
        let attrs = match item {
            ImplItem::Const(i) => &i.attrs,
            ImplItem::Fn(i) => &i.attrs,
            ImplItem::Type(i) => &i.attrs,
            ImplItem::Macro(i) => &i.attrs,
            _ => return syn::visit::visit_impl_item(self, item),
        };
        if !test_only(attrs) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast TraitItem) {
        let attrs = match item {
            TraitItem::Const(i) => &i.attrs,
            TraitItem::Fn(i) => &i.attrs,
            TraitItem::Type(i) => &i.attrs,
            TraitItem::Macro(i) => &i.attrs,
            _ => return syn::visit::visit_trait_item(self, item),
        };
        if !test_only(attrs) {
            syn::visit::visit_trait_item(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        // One segment alone (`self` as a receiver) names no other module.
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.record(&segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        syn::visit::visit_macro(self, mac);
        self.tokens(mac.tokens.clone());
    }

    fn visit_meta_list(&mut self, list: &'ast syn::MetaList) {
        syn::visit::visit_meta_list(self, list);
        self.tokens(list.tokens.clone());
    }
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Whether `attrs` compile the item for tests only: `#[cfg(test)]` or
/// `#[cfg(all(.., test, ..))]`.
fn test_only(attrs: &[Attribute]) -> bool {
    fn cfg_test(meta: &Meta) -> bool {
        match meta {
            Meta::Path(p) => p.is_ident("test"),
            Meta::List(l) if l.path.is_ident("all") => l
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|all| all.iter().any(cfg_test)),
            _ => false,
        }
    }
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .any(|a| a.parse_args::<Meta>().is_ok_and(|m| cfg_test(&m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate source tree in a temporary directory.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    fn m(path: &str) -> Module {
        path.split("::").map(str::to_owned).collect()
    }

    fn cycles(files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let dir = tree(files);
        Graph::read(dir.path())
            .unwrap()
            .cycles()
            .iter()
            .map(|c| c.iter().map(name).collect())
            .collect()
    }

    fn edges(files: &[(&str, &str)]) -> Vec<(String, String)> {
        let dir = tree(files);
        Graph::read(dir.path())
            .unwrap()
            .edges()
            .map(|(from, to, _)| (name(from), name(to)))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn modules_are_named_by_their_files() {
        let src = Path::new("/s");
        assert_eq!(module_of(src, Path::new("/s/main.rs")), Module::new());
        assert_eq!(module_of(src, Path::new("/s/lib.rs")), Module::new());
        assert_eq!(module_of(src, Path::new("/s/a.rs")), m("a"));
        assert_eq!(module_of(src, Path::new("/s/a/b.rs")), m("a::b"));
        assert_eq!(module_of(src, Path::new("/s/a/b/mod.rs")), m("a::b"));
    }

    #[test]
    fn a_binary_under_src_bin_is_a_crate_of_its_own() {
        let dir = tree(&[
            ("src/lib.rs", "pub mod a; pub mod b;"),
            ("src/a.rs", "use crate::b::B; pub struct A;"),
            ("src/b.rs", "pub struct B;"),
            // The binary's `crate::` is its own root: a loop inside it,
            // and nothing of the library's.
            ("src/bin/tool/main.rs", "mod a; mod b; fn main() {}"),
            ("src/bin/tool/a.rs", "pub fn h() { crate::b::g() }"),
            ("src/bin/tool/b.rs", "pub fn g() { crate::a::h() }"),
        ]);
        let lib = Graph::read(&dir.path().join("src")).unwrap();
        assert!(lib.cycles().is_empty());
        let lib_edges: Vec<_> = lib.edges().map(|(f, t, _)| (name(f), name(t))).collect();
        assert_eq!(lib_edges, pairs(&[("a", "b")]));
        let bin = Graph::read(&dir.path().join("src/bin/tool")).unwrap();
        let found: Vec<Vec<String>> = bin
            .cycles()
            .iter()
            .map(|c| c.iter().map(name).collect())
            .collect();
        assert_eq!(found, [["a", "b"]]);
    }

    #[test]
    fn finds_a_two_cycle() {
        let found = cycles(&[
            ("main.rs", "mod a; mod b; fn main() {}"),
            ("a.rs", "use crate::b::B; pub struct A(B);"),
            (
                "b.rs",
                "pub struct B; pub fn f(a: crate::a::A) -> crate::a::A { a }",
            ),
        ]);
        assert_eq!(found, [["a", "b"]]);
    }

    #[test]
    fn finds_a_three_cycle_through_code_and_macros() {
        let files = [
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", "pub const NAME: &str = \"a\"; use super::b::B;"),
            ("b.rs", "pub struct B; pub fn f() { crate::c::g() }"),
            ("c.rs", "pub fn g() { println!(\"{}\", crate::a::NAME); }"),
        ];
        assert_eq!(cycles(&files), [["a", "b", "c"]]);
        assert_eq!(edges(&files), pairs(&[("a", "b"), ("b", "c"), ("c", "a")]));
    }

    #[test]
    fn parent_to_child_is_the_tree_not_a_loop() {
        let files = [
            ("lib.rs", "mod a; use crate::a::child::C;"),
            (
                "a/mod.rs",
                "pub mod child; pub struct A; use self::child::C;",
            ),
            ("a/child.rs", "pub struct C(super::A);"),
        ];
        assert!(cycles(&files).is_empty());
        assert_eq!(edges(&files), pairs(&[("a::child", "a")]));
    }

    #[test]
    fn test_only_items_are_skipped() {
        let b = ("b.rs", "use crate::a::A; pub struct B;");
        let gated = |cfg: &str| {
            let a = format!(
                "pub struct A;\n\
                 {cfg} mod tests {{ use crate::b::B; }}\n\
                 {cfg} use crate::b::B as _;\n\
                 {cfg} fn t() {{ let _ = crate::b::B; }}\n\
                 {cfg} mod more;\n\
                 impl A {{ {cfg} fn t() {{ let _ = crate::b::B; }} }}"
            );
            cycles(&[
                ("lib.rs", "mod a; mod b;"),
                ("a.rs", &a),
                ("a/more.rs", "use crate::b::B;"),
                b,
            ])
        };
        assert!(gated("#[cfg(test)]").is_empty());
        assert!(gated("#[cfg(all(test, unix))]").is_empty());
        // The same items compiled outside tests are a loop.
        assert_eq!(gated("#[cfg(unix)]"), [["a", "b"]]);
    }

    #[test]
    fn use_groups_are_expanded() {
        let files = [
            ("lib.rs", "mod x;"),
            ("x/mod.rs", "pub mod y; pub mod a; pub mod b;"),
            ("x/y.rs", "use super::{a, b::{c}}; pub struct Y;"),
            ("x/a.rs", "use super::y::Y;"),
            ("x/b/mod.rs", "pub mod c;"),
            ("x/b/c.rs", "use crate::x::{y::{self}};"),
        ];
        assert_eq!(
            edges(&files),
            pairs(&[
                ("x::a", "x::y"),
                ("x::b::c", "x::y"),
                ("x::y", "x::a"),
                ("x::y", "x::b::c"),
            ])
        );
        assert_eq!(cycles(&files), [["x::a", "x::b::c", "x::y"]]);
    }

    #[test]
    fn inline_modules_resolve_from_where_they_are() {
        let files = [
            ("lib.rs", "mod a; mod b;"),
            (
                "a.rs",
                "mod inner { use super::super::b::B; fn f() { self::g() } fn g() {} }",
            ),
            ("b.rs", "pub struct B;"),
        ];
        assert_eq!(edges(&files), pairs(&[("a", "b")]));
    }

    #[test]
    fn visibility_and_other_crates_are_no_edges() {
        let files = [
            ("lib.rs", "mod a; mod b;"),
            ("a/mod.rs", "pub mod c;"),
            (
                "a/c.rs",
                "pub(super) struct C; pub(in crate::b) fn f() { ::std::mem::drop(std::vec::Vec::<u8>::new()) }",
            ),
            ("b.rs", ""),
        ];
        assert!(edges(&files).is_empty());
    }

    #[test]
    fn reports_each_cycle_with_its_edges() {
        let dir = tree(&[
            ("main.rs", "mod a; mod b;"),
            ("a.rs", "use crate::b::B;"),
            ("b.rs", "use crate::a;"),
        ]);
        let graph = Graph::read(dir.path()).unwrap();
        assert_eq!(
            report("x/src", &graph, &graph.cycles()),
            "x/src: cycle among a, b\n    \
             a -> b (crate::b::B in a.rs)\n    \
             b -> a (crate::a in b.rs)\n"
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_named() {
        let dir = tree(&[("lib.rs", "mod a;"), ("a.rs", "fn (")]);
        let e = format!("{:#}", Graph::read(dir.path()).unwrap_err());
        assert!(e.contains("a.rs"), "{e}");
    }
}
