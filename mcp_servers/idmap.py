"""The id-mapping helper the sandbox runs as root between the cgroup and bwrap (source text, run with ``-I -S``).

Kept as text in its own module: it is executed by a fresh interpreter, never imported into the server.
"""

__all__ = ["IDMAP_HELPER"]

# Run as root between the cgroup and bwrap, as source text under -I -S so that it starts without importing
# naestro or pydantic (exec calls are frequent). It enters a private mount namespace, mounts an id-mapped clone
# of the workspace over the workspace (the workspace owner's ids shown as the sandbox's, so nobody can write it
# and what it writes stays the owner's on disk), then execs bwrap. Any failure (a filesystem that cannot be
# id-mapped answers EINVAL; a kernel before 5.12, ENOSYS) falls back to the root argv and says so. Syscall
# numbers 428/429/442 are the same on every architecture but alpha.
IDMAP_HELPER = r"""
import ctypes, json, os, struct, sys
spec, argv = json.loads(sys.argv[1]), sys.argv[2:]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWNS, CLONE_NEWUSER, MS_REC, MS_PRIVATE = 0x20000, 0x10000000, 0x4000, 0x40000
SYS_open_tree, SYS_move_mount, SYS_mount_setattr = 428, 429, 442
AT_FDCWD, AT_EMPTY_PATH, OPEN_TREE_CLONE, MOVE_MOUNT_F_EMPTY_PATH, MOUNT_ATTR_IDMAP = -100, 0x1000, 1, 4, 0x100000

def check(result, what):
    if result < 0:
        raise OSError(ctypes.get_errno(), what)
    return result

def mapping_namespace(owner, sandbox):
    # A user namespace mapping the owner's uid/gid to the sandbox's: a child unshares, this root process writes
    # its maps, and the namespace outlives the child through the open /proc/PID/ns/user.
    ready, go = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(ready[1], b"1" if libc.unshare(CLONE_NEWUSER) == 0 else b"0")
        os.read(go[0], 1)
        os._exit(0)
    try:
        if os.read(ready[0], 1) != b"1":
            raise OSError("unshare(CLONE_NEWUSER) refused")
        for name, inner, outer in (("uid_map", owner[0], sandbox[0]), ("gid_map", owner[1], sandbox[1])):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(f"{inner} {outer} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.write(go[1], b"1")
        os.waitpid(pid, 0)

def idmap_workspace(path, owner, sandbox):
    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    tree = check(libc.syscall(SYS_open_tree, AT_FDCWD, path.encode(), OPEN_TREE_CLONE | os.O_CLOEXEC), "open_tree")
    attr = struct.pack("=QQQQ", MOUNT_ATTR_IDMAP, 0, 0, mapping_namespace(owner, sandbox))
    check(libc.syscall(SYS_mount_setattr, tree, b"", AT_EMPTY_PATH, attr, ctypes.c_size_t(len(attr))), "mount_setattr")
    check(libc.syscall(SYS_move_mount, tree, b"", AT_FDCWD, path.encode(), MOVE_MOUNT_F_EMPTY_PATH), "move_mount")

try:
    idmap_workspace(spec["workspace"], spec["owner"], spec["sandbox"])
    runs_as = "nobody"
except OSError:
    runs_as, argv = "root", spec["fallback"]
if spec["report_fd"] is not None:
    os.write(spec["report_fd"], runs_as.encode())
    os.close(spec["report_fd"])
os.execv(argv[0], argv)
"""
