//! Test-only twin of `userspace` with the recording fake backend linked in (feature `testkit`).
//! Integration tests run it exactly as a runtime runs the real binary.

// The shipped binary's heap, so tests run the allocator they ship.
#[global_allocator]
static HEAP: userspace_cni::heap::Heap = userspace_cni::heap::heap();

fn main() {
    std::process::exit(userspace_cni::entry::main(&[&userspace_cni_testkit::REGISTRATION]));
}
