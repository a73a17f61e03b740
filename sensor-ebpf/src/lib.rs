#![no_std]
// Lets `sensor` name this crate as a build-dependency so cargo rebuilds the
// object when these sources change; the programs live in the binary target.
