//! The `userspace` binary: a CNI plugin when CNI_COMMAND is set, the operator CLI otherwise.

#[global_allocator]
static HEAP: userspace_cni::heap::Heap = userspace_cni::heap::heap();

fn main() {
    std::process::exit(userspace_cni::entry::main(&[]));
}
