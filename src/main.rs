//! The `userspace` binary: a CNI plugin when CNI_COMMAND is set, the operator CLI otherwise.

fn main() {
    std::process::exit(userspace_cni::entry::main(&[]));
}
