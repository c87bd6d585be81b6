// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Substrate's kernel sensor: the execs and socket calls of every process in a
// watched world, read in the kernel when they happen, so that a program that
// is gone 100 µs later, is static, or never calls libc is seen all the same.
//
// One set of these programs serves every world on a host (loaded once,
// pinned, shared by every monitor). A world is a pid namespace: the
// `worlds` map holds its key (the namespace's 64-bit ns_id where the kernel
// has one, never reused; its inode where not) and the slot of its own ring
// buffer in `rings`, so a busy world cannot make another one lose events.
// A process belongs to the innermost watched pid namespace among its own and
// its ancestors': what it does in a nested namespace stays its world's.
//
// No vmlinux.h: the few kernel structs read are declared below with
// preserve_access_index, so clang emits CO-RE relocations (field names, not
// offsets) that libbpf fixes against the running kernel's BTF at load.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef int pid_t;

/* ---- kernel types: only the fields read; names must match the BTF ---- */
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct ns_common { unsigned int inum; u64 ns_id; };
struct pid_namespace { struct ns_common ns; unsigned int level; };
struct upid { int nr; struct pid_namespace *ns; };
struct pid { unsigned int level; struct upid numbers[1]; };
struct qstr { const unsigned char *name; };
struct dentry { struct dentry *d_parent; struct qstr d_name; };
struct vfsmount { struct dentry *mnt_root; };
struct mount { struct mount *mnt_parent; struct dentry *mnt_mountpoint; struct vfsmount mnt; };
struct path { struct vfsmount *mnt; struct dentry *dentry; };
struct fs_struct { struct path root; struct path pwd; };
struct mm_struct { unsigned long arg_start; unsigned long arg_end; };
typedef struct { unsigned int val; } kuid_t;
typedef struct { unsigned int val; } kgid_t;
struct cred { kuid_t uid; kgid_t gid; kuid_t euid; };
struct super_block { unsigned int s_dev; };
struct inode { unsigned short i_mode; unsigned long i_ino; struct super_block *i_sb; };
struct file { struct path f_path; struct inode *f_inode; void *private_data; };
struct fdtable { unsigned int max_fds; struct file **fd; };
struct files_struct { struct fdtable *fdt; };
struct sock_common {
	unsigned short skc_family;
	unsigned short skc_num;
	unsigned int skc_rcv_saddr;
	struct { u8 in6_u[16]; } skc_v6_rcv_saddr;
};
struct sock { struct sock_common __sk_common; u16 sk_protocol; };
struct socket { short type; struct sock *sk; };
struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	struct pid *thread_pid;
	struct mm_struct *mm;
	const struct cred *cred;
	struct fs_struct *fs;
	struct files_struct *files;
};
struct linux_binprm { struct file *file; const char *filename; int argc; };
#pragma clang attribute pop

/* The syscall tracepoints' records (tracefs events/syscalls/<name>/format):
 * a fixed ABI, not CO-RE. */
struct sys_enter_ctx { u64 common; int nr; int pad; u64 args[6]; };
struct sys_exit_ctx { u64 common; int nr; int pad; s64 ret; };

/* ---- the records user space reads (sensor/src/bpf/event.rs) ---- */
#define EVENT_EXEC 1
#define EVENT_NET 2

#define ARGV_MAX 4096 /* a power of two */
#define FILENAME_MAX_ 256
#define PATH_MAX_ 512 /* a power of two: where a path's next component may start */
#define NAME_MAX_ 255
#define PATH_DEPTH 24
#define MAX_NS_LEVELS 8
#define SOCKADDR_MAX 128 /* sizeof(struct sockaddr_storage) */

#define F_ARGV_TRUNC (1 << 0)
#define F_ARGV_FAULT (1 << 1)
#define F_CWD_TRUNC (1 << 2)
#define F_EXE_TRUNC (1 << 3)
#define F_NESTED_NS (1 << 4) /* matched an ancestor pid namespace */
#define F_FILENAME_FAULT (1 << 5)
#define F_ADDR_FAULT (1 << 6)

/* Common to every record: what kind, when, and who (host and world view). */
struct header {
	u32 kind;
	u32 flags;
	u64 ktime_ns;  /* CLOCK_MONOTONIC */
	u32 tgid;      /* host view */
	u32 pid;       /* the thread, host view */
	u32 world_pid; /* tgid in the world's pid namespace */
	u32 ppid;      /* the parent's tgid, host view */
	u32 world_ppid; /* the parent's tgid in the world's namespace, 0 outside it */
	u32 uid;
	u32 euid;
	u32 gid;
};

struct exec_event {
	struct header h;
	u64 cgroup_id;
	u64 exe_ino;
	u32 exe_dev;
	u32 old_pid;       /* the thread that called exec */
	u32 argc;
	u32 argv_len;      /* bytes of argv[] copied (NUL-separated) */
	u32 argv_full_len; /* arg_end - arg_start */
	u32 filename_len;  /* with its NUL */
	u32 exe_len;       /* bytes of exe[]: components leaf first, NUL-separated */
	u32 cwd_len;       /* the same for cwd[] */
	char filename[FILENAME_MAX_]; /* as given to execve */
	char exe[PATH_MAX_ + NAME_MAX_ + 1];
	char cwd[PATH_MAX_ + NAME_MAX_ + 1];
	char argv[ARGV_MAX]; /* last: the record is cut after argv_len */
};

_Static_assert(sizeof(struct header) == 48, "header layout (event.rs)");
_Static_assert(__builtin_offsetof(struct exec_event, argv) == 1888, "exec layout (event.rs)");

#define NET_CONNECT 1
#define NET_BIND 2
#define NET_LISTEN 3
#define NET_ACCEPT 4
#define NET_SENDTO 5

struct net_event {
	struct header h;
	u32 op;
	s32 fd;
	s64 ret;       /* the syscall's return (-errno on failure) */
	u16 sock_type; /* SOCK_STREAM, SOCK_DGRAM, ...; 0 unknown */
	u16 protocol;
	u32 addr_len;  /* bytes of addr[] that hold the address */
	u8 addr[SOCKADDR_MAX];
};

_Static_assert(sizeof(struct net_event) == 200, "net layout (event.rs)");

/* Past this many unread bytes a world's ring wakes its reader; below, the
 * reader polls on a timer (a wake-up per event costs ~19 µs here). */
#define WAKEUP_BYTES (256 << 10)

/* ---- maps ---- */
struct world {
	u32 slot;   /* index in rings and dropped */
	u32 pad;
	u64 owner;  /* user space's: the registering monitor (pid, start time) */
	u64 owner_start;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u64);
	__type(value, struct world);
} worlds SEC(".maps");

#define RING_BYTES (4 << 20)
#define SLOTS 256

struct world_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_BYTES);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SLOTS);
	__type(key, u32);
	__array(values, struct world_ring);
} rings SEC(".maps");

/* Records that found their world's ring full, by slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, u32);
	__type(value, u64);
} dropped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct exec_event);
} exec_scratch SEC(".maps");

/* A socket call between its entry and its exit, by thread. */
struct pending_net {
	struct net_event e;
	u64 user_addr;     /* where the address is (accept: written at exit) */
	u64 user_addr_len; /* accept: where its length is */
	u32 slot;          /* the world's ring */
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u64);
	__type(value, struct pending_net);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct pending_net);
} net_scratch SEC(".maps");

/* sendto: only a process's first datagram to each peer is a record. */
struct peer_key {
	u32 tgid;
	u32 len;
	u8 addr[28]; /* sockaddr_in6 */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct peer_key);
	__type(value, u8);
} peers_seen SEC(".maps");

/* ---- attribution ---- */
struct member {
	u32 slot;
	u32 world_pid;
	u32 level; /* the matched namespace's level */
	u32 nested;
};

/* A world's key: its pid namespace's ns_id where the kernel has one (then
 * user space has NS_GET_ID too), else its inode. */
static __always_inline u64 ns_key(struct pid_namespace *ns)
{
	if (bpf_core_field_exists(struct ns_common, ns_id))
		return BPF_CORE_READ(ns, ns.ns_id);
	return BPF_CORE_READ(ns, ns.inum);
}

/* The watched world `task` belongs to: its innermost watched pid namespace. */
static __always_inline int world_of(struct task_struct *task, struct member *m)
{
	struct pid *tp = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(tp, level);
	int i;

	for (i = 0; i < MAX_NS_LEVELS; i++) {
		if (i > level)
			return 0;
		struct upid up;
		unsigned int at = (level - i) & 31;
		if (bpf_core_read(&up, sizeof(up), &tp->numbers[at]))
			return 0;
		u64 key = ns_key(up.ns);
		struct world *w = bpf_map_lookup_elem(&worlds, &key);
		if (w) {
			m->slot = w->slot;
			m->world_pid = up.nr;
			m->level = at;
			m->nested = i > 0;
			return 1;
		}
	}
	return 0;
}

static __always_inline void fill_header(struct header *h, u32 kind, struct task_struct *task,
					 struct member *m)
{
	h->kind = kind;
	h->flags = m->nested ? F_NESTED_NS : 0;
	h->ktime_ns = bpf_ktime_get_ns();
	h->tgid = BPF_CORE_READ(task, tgid);
	h->pid = BPF_CORE_READ(task, pid);
	h->world_pid = m->world_pid;
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	h->ppid = BPF_CORE_READ(parent, tgid);
	/* The parent's pid at the world's level, if it lives in the world. */
	h->world_ppid = 0;
	struct pid *pp = BPF_CORE_READ(parent, group_leader, thread_pid);
	struct pid *tp = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int plevel = BPF_CORE_READ(pp, level);
	/* Computed outside bpf_core_read: inside it, m->level would be taken
	 * for a kernel field to relocate. */
	unsigned int at = m->level & 31;
	if (plevel >= at) {
		struct upid mine, theirs;
		if (!bpf_core_read(&mine, sizeof(mine), &tp->numbers[at]) &&
		    !bpf_core_read(&theirs, sizeof(theirs), &pp->numbers[at]) &&
		    mine.ns == theirs.ns)
			h->world_ppid = theirs.nr;
	}
	h->uid = BPF_CORE_READ(task, cred, uid.val);
	h->euid = BPF_CORE_READ(task, cred, euid.val);
	h->gid = BPF_CORE_READ(task, cred, gid.val);
}

/* Sends a record to its world's ring, without waking the reader unless a
 * lot is waiting; a full ring is counted, never silent. */
static __always_inline void emit(u32 slot, void *record, u64 size)
{
	void *ring = bpf_map_lookup_elem(&rings, &slot);
	u64 *drops;

	if (ring) {
		u64 flags = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) > WAKEUP_BYTES
				    ? BPF_RB_FORCE_WAKEUP
				    : BPF_RB_NO_WAKEUP;
		if (!bpf_ringbuf_output(ring, record, size, flags))
			return;
	}
	drops = bpf_map_lookup_elem(&dropped, &slot);
	if (drops)
		__sync_fetch_and_add(drops, 1);
}

/* A path as the task sees it (up to its root, across mounts), components
 * leaf first, NUL-separated, into buf; *len is where the next one goes.
 * The offset lives in the record (map memory), not a register: a loaded
 * value is an unknown scalar to the verifier, so the loop's states do not
 * multiply with every possible offset. */
static __always_inline void read_path(struct task_struct *task, struct path *where, char *buf,
				      u32 *len, u32 *flags, u32 trunc_flag)
{
	struct dentry *d = BPF_CORE_READ(where, dentry);
	struct vfsmount *vm = BPF_CORE_READ(where, mnt);
	struct dentry *root = BPF_CORE_READ(task, fs, root.dentry);
	struct vfsmount *root_mnt = BPF_CORE_READ(task, fs, root.mnt);
	struct mount *mnt = (void *)((char *)vm - bpf_core_field_offset(struct mount, mnt));
	int i;

	*len = 0;
	for (i = 0; i < PATH_DEPTH; i++) {
		if (d == root && vm == root_mnt)
			return;
		struct dentry *mnt_root = BPF_CORE_READ(vm, mnt_root);
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (d == mnt_root) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (up == mnt)
				return; /* the namespace's root mount */
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vm = (void *)((char *)mnt + bpf_core_field_offset(struct mount, mnt));
			continue;
		}
		if (d == parent)
			return;
		u32 off = *len;
		if (off >= PATH_MAX_) {
			*flags |= trunc_flag;
			return;
		}
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);
		long n = bpf_probe_read_kernel_str(&buf[off & (PATH_MAX_ - 1)], NAME_MAX_ + 1, name);
		if (n <= 0)
			return;
		*len = off + n;
		d = parent;
	}
	*flags |= trunc_flag;
}

/* ---- exec ---- */
static __always_inline int on_exec(struct task_struct *task, u32 old_pid, struct linux_binprm *bprm)
{
	struct member m = {};
	u32 zero = 0;

	if (!world_of(task, &m))
		return 0;
	struct exec_event *e = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!e)
		return 0;
	fill_header(&e->h, EVENT_EXEC, task, &m);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->old_pid = old_pid;
	e->argc = BPF_CORE_READ(bprm, argc);

	long n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	if (n < 0) {
		e->h.flags |= F_FILENAME_FAULT;
		n = 0;
	}
	e->filename_len = n;

	struct file *exe = BPF_CORE_READ(bprm, file);
	e->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);
	e->exe_dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	struct path exe_path;
	BPF_CORE_READ_INTO(&exe_path, exe, f_path);
	read_path(task, &exe_path, e->exe, &e->exe_len, &e->h.flags, F_EXE_TRUNC);

	struct path pwd;
	BPF_CORE_READ_INTO(&pwd, task, fs, pwd);
	read_path(task, &pwd, e->cwd, &e->cwd_len, &e->h.flags, F_CWD_TRUNC);

	/* argv: the new image's arg area, written by exec just now (resident). */
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	u64 len = end > start ? end - start : 0;
	e->argv_full_len = len;
	if (len > ARGV_MAX) {
		len = ARGV_MAX;
		e->h.flags |= F_ARGV_TRUNC;
	}
	u32 l = len;
	if (l > 0 && l <= ARGV_MAX) {
		if (bpf_probe_read_user(e->argv, l, (void *)start)) {
			e->h.flags |= F_ARGV_FAULT;
			l = 0;
		}
	} else {
		l = 0;
	}
	e->argv_len = l;

	u64 size = __builtin_offsetof(struct exec_event, argv) + (u64)l;
	if (size > sizeof(*e))
		size = sizeof(*e);
	emit(m.slot, e, size);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_tp_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(p, old_pid, bprm);
}

SEC("raw_tp/sched_process_exec")
int exec_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	return on_exec((void *)ctx->args[0], (u32)ctx->args[1], (void *)ctx->args[2]);
}

/* ---- sockets ---- */

/* The socket behind `fd` of the current task, or NULL. */
static __always_inline struct socket *socket_of(struct task_struct *task, int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;

	if (fd < 0 || (unsigned int)fd >= max)
		return 0;
	if (bpf_core_read(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	unsigned short mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & 0170000) != 0140000) /* S_IFSOCK */
		return 0;
	return BPF_CORE_READ(f, private_data);
}

/* Starts the record of a socket call of a world's process; NULL when the
 * caller is not in a watched world. */
static __always_inline struct pending_net *begin_net(u32 op, int fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct member m = {};
	u32 zero = 0;

	if (!world_of(task, &m)) {
		/* A thread of a world that died mid-call left its entry; a
		 * host thread given its id must not end that call. */
		u64 id = bpf_get_current_pid_tgid();
		bpf_map_delete_elem(&pending, &id);
		return 0;
	}
	struct pending_net *p = bpf_map_lookup_elem(&net_scratch, &zero);
	if (!p)
		return 0;
	__builtin_memset(p, 0, sizeof(*p));
	fill_header(&p->e.h, EVENT_NET, task, &m);
	p->slot = m.slot;
	p->e.op = op;
	p->e.fd = fd;
	struct socket *sock = socket_of(task, fd);
	if (sock) {
		p->e.sock_type = BPF_CORE_READ(sock, type);
		p->e.protocol = BPF_CORE_READ(sock, sk, sk_protocol);
	}
	return p;
}

static __always_inline void read_addr(struct pending_net *p, u64 user, u64 len)
{
	if (!user)
		return;
	if (len > SOCKADDR_MAX)
		len = SOCKADDR_MAX;
	u32 l = len;
	if (l > 0 && l <= SOCKADDR_MAX) {
		if (bpf_probe_read_user(p->e.addr, l, (void *)user)) {
			p->e.h.flags |= F_ADDR_FAULT;
			return;
		}
		p->e.addr_len = l;
	}
}

static __always_inline void park(struct pending_net *p)
{
	u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&pending, &id, p, BPF_ANY);
}

/* Ends the call begun on this thread: its return value, then the record. */
static __always_inline int finish_net(s64 ret, u32 op)
{
	u64 id = bpf_get_current_pid_tgid();
	struct pending_net *p = bpf_map_lookup_elem(&pending, &id);

	if (!p)
		return 0;
	if (p->e.op != op) {
		bpf_map_delete_elem(&pending, &id);
		return 0;
	}
	p->e.ret = ret;
	if (op == NET_ACCEPT && ret >= 0 && p->user_addr && p->user_addr_len) {
		int len = 0;
		if (!bpf_probe_read_user(&len, sizeof(len), (void *)p->user_addr_len) && len > 0)
			read_addr(p, p->user_addr, len);
	}
	if (op == NET_SENDTO) {
		struct peer_key key = {.tgid = p->e.h.tgid, .len = p->e.addr_len};
		__builtin_memcpy(key.addr, p->e.addr, sizeof(key.addr));
		if (bpf_map_lookup_elem(&peers_seen, &key)) {
			bpf_map_delete_elem(&pending, &id);
			return 0;
		}
		u8 one = 1;
		if (ret >= 0)
			bpf_map_update_elem(&peers_seen, &key, &one, BPF_ANY);
	}
	emit(p->slot, &p->e, sizeof(p->e));
	bpf_map_delete_elem(&pending, &id);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int net_connect_enter(struct sys_enter_ctx *ctx)
{
	struct pending_net *p = begin_net(NET_CONNECT, (int)ctx->args[0]);
	if (!p)
		return 0;
	read_addr(p, ctx->args[1], ctx->args[2]);
	park(p);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int net_connect_exit(struct sys_exit_ctx *ctx)
{
	return finish_net(ctx->ret, NET_CONNECT);
}

SEC("tracepoint/syscalls/sys_enter_bind")
int net_bind_enter(struct sys_enter_ctx *ctx)
{
	struct pending_net *p = begin_net(NET_BIND, (int)ctx->args[0]);
	if (!p)
		return 0;
	read_addr(p, ctx->args[1], ctx->args[2]);
	park(p);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int net_bind_exit(struct sys_exit_ctx *ctx)
{
	return finish_net(ctx->ret, NET_BIND);
}

/* listen: the local address is the socket's own (bound before). */
SEC("tracepoint/syscalls/sys_enter_listen")
int net_listen_enter(struct sys_enter_ctx *ctx)
{
	struct pending_net *p = begin_net(NET_LISTEN, (int)ctx->args[0]);
	if (!p)
		return 0;
	struct socket *sock = socket_of((void *)bpf_get_current_task(), (int)ctx->args[0]);
	if (sock) {
		struct sock *sk = BPF_CORE_READ(sock, sk);
		unsigned short family = BPF_CORE_READ(sk, __sk_common.skc_family);
		u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
		/* Laid out as a sockaddr_in / sockaddr_in6, port in network order. */
		p->e.addr[0] = family & 0xff;
		p->e.addr[1] = family >> 8;
		p->e.addr[2] = port >> 8;
		p->e.addr[3] = port & 0xff;
		if (family == 2) {
			unsigned int a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
			__builtin_memcpy(&p->e.addr[4], &a, 4);
			p->e.addr_len = 16;
		} else if (family == 10) {
			BPF_CORE_READ_INTO(&p->e.addr[8], sk, __sk_common.skc_v6_rcv_saddr);
			p->e.addr_len = 28;
		} else {
			/* The family alone (a unix socket's path is not read). */
			p->e.addr_len = 2;
		}
	}
	park(p);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_listen")
int net_listen_exit(struct sys_exit_ctx *ctx)
{
	return finish_net(ctx->ret, NET_LISTEN);
}

static __always_inline int accept_enter(struct sys_enter_ctx *ctx)
{
	struct pending_net *p = begin_net(NET_ACCEPT, (int)ctx->args[0]);
	if (!p)
		return 0;
	p->user_addr = ctx->args[1];
	p->user_addr_len = ctx->args[2];
	park(p);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int net_accept_enter(struct sys_enter_ctx *ctx)
{
	return accept_enter(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int net_accept_exit(struct sys_exit_ctx *ctx)
{
	return finish_net(ctx->ret, NET_ACCEPT);
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int net_accept4_enter(struct sys_enter_ctx *ctx)
{
	return accept_enter(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int net_accept4_exit(struct sys_exit_ctx *ctx)
{
	return finish_net(ctx->ret, NET_ACCEPT);
}

/* sendto with an address: a datagram to a peer the socket is not connected
 * to; the first one per process and peer is a record. */
SEC("tracepoint/syscalls/sys_enter_sendto")
int net_sendto_enter(struct sys_enter_ctx *ctx)
{
	if (!ctx->args[4])
		return 0;
	struct pending_net *p = begin_net(NET_SENDTO, (int)ctx->args[0]);
	if (!p)
		return 0;
	read_addr(p, ctx->args[4], ctx->args[5]);
	park(p);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int net_sendto_exit(struct sys_exit_ctx *ctx)
{
	return finish_net(ctx->ret, NET_SENDTO);
}

/* Only loaded by the probe, to learn whether this host allows BPF LSM. */
SEC("lsm/bprm_check_security")
int BPF_PROG(probe_lsm, struct linux_binprm *bprm)
{
	return 0;
}
