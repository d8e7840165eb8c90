/* neurodesk-launch: runs a container runtime (bwrap) as its child and passes signals on to the
 * program the runtime started, so that program's traps run; ends the way the program ended.
 *
 *   neurodesk-launch [-e K] RUNTIME [ARG]...
 *
 * bwrap stays outside the container as the program's parent and dies on SIGINT/SIGTERM without
 * passing them on (its child then gets SIGKILL from --die-with-parent). This launcher is the
 * process the caller knows instead. It starts the runtime in a new session when stdin is a
 * terminal (Ctrl-C then reaches only the launcher, and the program can still read the
 * terminal), else in a process group of its own (signals sent to the caller's group, as
 * `timeout` and schedulers do, miss the runtime); each catchable signal it gets goes to the
 * runtime's child, the program; its exit status is the runtime's, and when the program died of a
 * signal the launcher forwarded, the launcher dies of it too. Signals ignored by the caller stay
 * ignored in the program, as they would for the program run directly. File descriptors are
 * inherited untouched (the wrapper hands made-up files to bwrap on fds 3 and 4).
 *
 * With -e K, bwrap --setenv words for the caller's LC_* variables, then for its APPTAINERENV_X
 * and SINGULARITYENV_X variables (as X), each in the order of the environment, go before the
 * last K arguments: the RunSpec's rule for variables with no fixed name, which a POSIX sh can
 * only list by forking (the wrapper does that itself when there is no launcher).
 *
 * Built from this source by neurodesk at install time (runtime/launcher.py). On x86-64 and
 * arm64 it is built without a C library (-DND_NOLIBC: raw system calls, about a tenth of the
 * start-up time of a static glibc program); elsewhere with the C library. Wrappers fall back to
 * running the runtime directly when it is missing. C, not sh: a POSIX sh ignores SIGINT and
 * SIGQUIT in its background jobs and cannot undo that.
 */

#ifdef ND_NOLIBC
/* ---- the few system calls needed, without a C library ---------------------------------- */
typedef unsigned long size_t;
typedef long ssize_t;
#define NULL ((void *)0)
#if defined(__x86_64__)
enum { NR_read = 0, NR_write = 1, NR_close = 3, NR_rt_sigaction = 13, NR_rt_sigprocmask = 14,
       NR_ioctl = 16, NR_getpid = 39, NR_clone = 56, NR_execve = 59, NR_wait4 = 61,
       NR_kill = 62, NR_setpgid = 109, NR_setsid = 112, NR_rt_sigsuspend = 130,
       NR_exit_group = 231, NR_openat = 257 };
static long sys6(long n, long a, long b, long c, long d, long e) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n"
        " and $-16,%rsp\n call nd_start\n hlt\n");
__attribute__((naked)) static void restorer(void) {
    __asm__ volatile("mov $15, %rax\n syscall");
}
#define SA_RESTORER_FLAG 0x04000000UL
#define RESTORER restorer
#elif defined(__aarch64__)
enum { NR_read = 63, NR_write = 64, NR_close = 57, NR_rt_sigaction = 134,
       NR_rt_sigprocmask = 135, NR_ioctl = 29, NR_getpid = 172, NR_clone = 220,
       NR_execve = 221, NR_wait4 = 260, NR_kill = 129, NR_setpgid = 154, NR_setsid = 157,
       NR_rt_sigsuspend = 133, NR_exit_group = 94, NR_openat = 56 };
static long sys6(long n, long a, long b, long c, long d, long e) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
    return x0;
}
__asm__(".text\n.global _start\n_start:\n mov x0, sp\n bl nd_start\n");
#define SA_RESTORER_FLAG 0UL
#define RESTORER NULL
#else
#error "no raw system calls for this architecture: build with the C library"
#endif
#define SIGHUP 1
#define SIGINT 2
#define SIGQUIT 3
#define SIGUSR1 10
#define SIGUSR2 12
#define SIGALRM 14
#define SIGTERM 15
#define SIGCHLD 17
#define SIGCONT 18
#define SIGWINCH 28
#define SIG_DFL ((void (*)(int))0)
#define SIG_IGN ((void (*)(int))1)
#define SA_NOCLDSTOP 1UL
#define WNOHANG 1
#define AT_FDCWD (-100)
#define TCGETS 0x5401
typedef unsigned long sigset_t;
struct ksigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    sigset_t mask;
};
static void *memset(void *s, int c, size_t n) {
    volatile unsigned char *p = s;
    while (n--) *p++ = (unsigned char)c;
    return s;
}
static int set_handler(int sig, void (*handler)(int), unsigned long flags) {
    struct ksigaction sa = {handler, flags | SA_RESTORER_FLAG, RESTORER, 0};
    return (int)sys6(NR_rt_sigaction, sig, (long)&sa, 0, sizeof(sigset_t), 0);
}
static void (*get_handler(int sig))(int) {
    struct ksigaction old;
    memset(&old, 0, sizeof old);
    sys6(NR_rt_sigaction, sig, 0, (long)&old, sizeof(sigset_t), 0);
    return old.handler;
}
static void mask_set(int how, const sigset_t *set, sigset_t *old) {
    sys6(NR_rt_sigprocmask, how, (long)set, (long)old, sizeof(sigset_t), 0);
}
#define SIG_BLOCK 0
#define SIG_UNBLOCK 1
#define SIG_SETMASK 2
static void add(sigset_t *set, int sig) { *set |= 1UL << (sig - 1); }
static void del(sigset_t *set, int sig) { *set &= ~(1UL << (sig - 1)); }
static int fork_(void) { return (int)sys6(NR_clone, SIGCHLD, 0, 0, 0, 0); }
static int wait_(int pid, int *status, int options) {
    return (int)sys6(NR_wait4, pid, (long)status, options, 0, 0);
}
static void suspend(const sigset_t *mask) { sys6(NR_rt_sigsuspend, (long)mask, sizeof *mask, 0, 0, 0); }
static int kill_(int pid, int sig) { return (int)sys6(NR_kill, pid, sig, 0, 0, 0); }
static int getpid_(void) { return (int)sys6(NR_getpid, 0, 0, 0, 0, 0); }
static int tty(int fd) {
    char buf[128];
    return sys6(NR_ioctl, fd, TCGETS, (long)buf, 0, 0) == 0;
}
static void new_session(void) { sys6(NR_setsid, 0, 0, 0, 0, 0); }
static void own_group(void) { sys6(NR_setpgid, 0, 0, 0, 0, 0); }
static int open_ro(const char *path) { return (int)sys6(NR_openat, AT_FDCWD, (long)path, 0, 0, 0); }
static ssize_t read_(int fd, char *buf, size_t n) { return sys6(NR_read, fd, (long)buf, (long)n, 0, 0); }
static void close_(int fd) { sys6(NR_close, fd, 0, 0, 0, 0); }
static void write_err(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    sys6(NR_write, 2, (long)s, (long)n, 0, 0);
}
static long execve_(const char *path, char **argv, char **envp) {
    return sys6(NR_execve, (long)path, (long)argv, (long)envp, 0, 0);
}
__attribute__((noreturn)) static void exit_(int code) {
    for (;;) sys6(NR_exit_group, code, 0, 0, 0, 0);
}
#else
/* ---- the same calls through the C library ------------------------------------------------ */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static int set_handler(int sig, void (*handler)(int), unsigned long flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = (int)flags;
    return sigaction(sig, &sa, NULL);
}
static void (*get_handler(int sig))(int) {
    struct sigaction old;
    sigaction(sig, NULL, &old);
    return old.sa_handler;
}
static void mask_set(int how, const sigset_t *set, sigset_t *old) { sigprocmask(how, set, old); }
static void add(sigset_t *set, int sig) { sigaddset(set, sig); }
static void del(sigset_t *set, int sig) { sigdelset(set, sig); }
static int fork_(void) { return fork(); }
static int wait_(int pid, int *status, int options) { return waitpid(pid, status, options); }
static void suspend(const sigset_t *mask) { sigsuspend(mask); }
static int kill_(int pid, int sig) { return kill(pid, sig); }
static int getpid_(void) { return getpid(); }
static int tty(int fd) { return isatty(fd); }
static void new_session(void) { setsid(); }
static void own_group(void) { setpgid(0, 0); }
static int open_ro(const char *path) { return open(path, O_RDONLY | O_CLOEXEC); }
static ssize_t read_(int fd, char *buf, size_t n) { return read(fd, buf, n); }
static void close_(int fd) { close(fd); }
static void write_err(const char *s) {
    ssize_t ignored = write(2, s, strlen(s));
    (void)ignored;
}
static long execve_(const char *path, char **argv, char **envp) {
    return execve(path, argv, envp);
}
__attribute__((noreturn)) static void exit_(int code) { _exit(code); }
#endif

/* ---- the launcher ------------------------------------------------------------------------ */
static const int FORWARDED[] = {SIGINT,  SIGTERM,  SIGHUP,  SIGQUIT, SIGUSR1,
                                SIGUSR2, SIGWINCH, SIGALRM, SIGCONT};
#define NFORWARDED (sizeof FORWARDED / sizeof FORWARDED[0])

static volatile int pending[NFORWARDED];

static void on_signal(int sig) {
    for (size_t i = 0; i < NFORWARDED; i++)
        if (FORWARDED[i] == sig) pending[i] = 1;
}

static void on_child(int sig) { (void)sig; }

static size_t length(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static int starts(const char *s, const char *prefix) {
    while (*prefix)
        if (*s++ != *prefix++) return 0;
    return 1;
}

static char *put_number(char *out, long value) {
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + value % 10); while ((value /= 10) > 0);
    while (n) *out++ = digits[--n];
    return out;
}

/* The runtime's first child (the program), or the runtime itself before it has one. */
static int program(int runtime) {
    char path[80], buf[32], *p = path;
    for (const char *s = "/proc/"; *s;) *p++ = *s++;
    p = put_number(p, runtime);
    for (const char *s = "/task/"; *s;) *p++ = *s++;
    p = put_number(p, runtime);
    for (const char *s = "/children"; *s;) *p++ = *s++;
    *p = '\0';
    int fd = open_ro(path);
    if (fd < 0) return runtime;
    ssize_t n = read_(fd, buf, sizeof buf - 1);
    close_(fd);
    long pid = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) pid = pid * 10 + (buf[i] - '0');
    return pid > 0 ? (int)pid : runtime;
}

static const char *renamed(const char *entry) {
    static const char *const prefixes[] = {"APPTAINERENV_", "SINGULARITYENV_"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = length(prefixes[i]);
        if (starts(entry, prefixes[i]) && entry[n] != '=' && entry[n] != '\0') return entry + n;
    }
    return NULL;
}

static char names[1 << 16]; /* the variables' names, each ended by a NUL */

/* argv (argc words) with the --setenv words of -e K before its last K words, into out. */
static void with_env(char **argv, int argc, int keep_last, char **envp, char **out) {
    int head = argc - keep_last, n = 0;
    size_t used = 0;
    for (int i = 0; i < head; i++) out[n++] = argv[i];
    for (int pass = 0; pass < 2; pass++) {
        for (char **e = envp; *e; e++) {
            const char *name = pass == 0 ? (starts(*e, "LC_") ? *e : NULL) : renamed(*e);
            if (!name) continue;
            size_t len = 0;
            while (name[len] && name[len] != '=') len++;
            if (name[len] != '=' || used + len + 1 > sizeof names) continue;
            for (size_t i = 0; i < len; i++) names[used + i] = name[i];
            names[used + len] = '\0';
            out[n++] = "--setenv";
            out[n++] = names + used;
            out[n++] = (char *)name + len + 1;
            used += len + 1;
        }
    }
    for (int i = head; i < argc; i++) out[n++] = argv[i];
    out[n] = NULL;
}

/* execvp: a name without a slash is looked up in $PATH. */
static void run(char **argv, char **envp) {
    const char *name = argv[0];
    for (const char *s = name; *s; s++)
        if (*s == '/') {
            execve_(name, argv, envp);
            return;
        }
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (char **e = envp; *e; e++)
        if (starts(*e, "PATH=")) path = *e + 5;
    char buf[4096];
    size_t nlen = length(name);
    while (1) {
        size_t dlen = 0;
        while (path[dlen] && path[dlen] != ':') dlen++;
        if (dlen + nlen + 2 <= sizeof buf) {
            size_t k = 0;
            for (size_t i = 0; i < dlen; i++) buf[k++] = path[i];
            if (dlen == 0) buf[k++] = '.';
            buf[k++] = '/';
            for (size_t i = 0; i <= nlen; i++) buf[k++] = name[i];
            execve_(buf, argv, envp);
        }
        if (!path[dlen]) return;
        path += dlen + 1;
    }
}

static int launch(int argc, char **argv, char **envp) {
    char **cmd = argv + 1;
    int count = argc - 1;
    int keep_last = -1;
    if (argc > 3 && argv[1][0] == '-' && argv[1][1] == 'e' && argv[1][2] == '\0') {
        keep_last = 0;
        for (const char *s = argv[2]; *s >= '0' && *s <= '9'; s++) keep_last = keep_last * 10 + (*s - '0');
        cmd = argv + 3;
        count = argc - 3;
    }
    if (count < 1) {
        write_err("usage: neurodesk-launch [-e K] RUNTIME [ARG]...\n");
        return 127;
    }
    sigset_t blocked, before;
    for (size_t i = 0; i < sizeof blocked; i++) ((unsigned char *)&blocked)[i] = 0;
    add(&blocked, SIGCHLD);
    for (size_t i = 0; i < NFORWARDED; i++) add(&blocked, FORWARDED[i]);
    mask_set(SIG_BLOCK, &blocked, &before);
    int handled[NFORWARDED];
    for (size_t i = 0; i < NFORWARDED; i++) {
        handled[i] = get_handler(FORWARDED[i]) != SIG_IGN;
        if (handled[i]) set_handler(FORWARDED[i], on_signal, 0);
    }
    set_handler(SIGCHLD, on_child, SA_NOCLDSTOP);

    int runtime = fork_();
    if (runtime < 0) {
        write_err("neurodesk-launch: cannot fork\n");
        return 127;
    }
    if (runtime == 0) {
        for (size_t i = 0; i < NFORWARDED; i++)
            if (handled[i]) set_handler(FORWARDED[i], SIG_DFL, 0);
        set_handler(SIGCHLD, SIG_DFL, 0);
        if (tty(0))
            new_session();
        else
            own_group();
        mask_set(SIG_SETMASK, &before, NULL);
        if (keep_last >= 0 && keep_last <= count) {
            size_t extra = 0;
            for (char **e = envp; *e; e++)
                if (starts(*e, "LC_") || renamed(*e)) extra++;
            char *out[count + 3 * extra + 1];
            with_env(cmd, count, keep_last, envp, out);
            run(out, envp);
        } else {
            run(cmd, envp);
        }
        write_err("neurodesk-launch: cannot run ");
        write_err(cmd[0]);
        write_err("\n");
        exit_(127);
    }

    sigset_t waiting = before;
    del(&waiting, SIGCHLD);
    for (size_t i = 0; i < NFORWARDED; i++) del(&waiting, FORWARDED[i]);
    int last = 0, status = 0;
    for (;;) {
        if (wait_(runtime, &status, WNOHANG) == runtime) break;
        suspend(&waiting);
        for (size_t i = 0; i < NFORWARDED; i++) {
            if (!pending[i]) continue;
            pending[i] = 0;
            last = FORWARDED[i];
            kill_(program(runtime), last);
        }
    }
    int termsig = status & 0x7f, code = (status >> 8) & 0xff;
    int sig = 0;
    if (termsig != 0 && termsig != 0x7f)
        sig = termsig;
    else if (last && code == 128 + last)
        sig = last; /* bwrap reports a program killed by signal N as 128+N */
    if (sig && sig != SIGCONT && sig != SIGWINCH) {
        set_handler(sig, SIG_DFL, 0);
        sigset_t only;
        for (size_t i = 0; i < sizeof only; i++) ((unsigned char *)&only)[i] = 0;
        add(&only, sig);
        mask_set(SIG_UNBLOCK, &only, NULL);
        kill_(getpid_(), sig);
    }
    return termsig ? 128 + termsig : code;
}

#ifdef ND_NOLIBC
__attribute__((used, noreturn)) void nd_start(long *sp) {
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    exit_(launch(argc, argv, argv + argc + 1));
}
#else
extern char **environ;
int main(int argc, char **argv) { return launch(argc, argv, environ); }
#endif
