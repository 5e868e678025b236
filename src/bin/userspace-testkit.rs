//! Test-only twin of `userspace` with the recording fake backend linked in (feature `testkit`).
//! Integration tests run it exactly as a runtime runs the real binary.

fn main() {
    std::process::exit(userspace_cni::entry::main(&[&userspace_cni_testkit::REGISTRATION]));
}
