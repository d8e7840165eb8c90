/* neurodesk-launch: runs a container runtime (bwrap) as its child and passes signals on to the
 * program the runtime started, so that program's traps run; ends the way the program ended.
 *
 *   neurodesk-launch RUNTIME [ARG]...
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
 * Built from this source by neurodesk at install time (runtime/launcher.py); wrappers fall back
 * to running the runtime directly when it is missing. C, not sh: a POSIX sh ignores SIGINT and
 * SIGQUIT in its background jobs and cannot undo that, and would cost a fork of the shell too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int FORWARDED[] = {SIGINT,  SIGTERM, SIGHUP,   SIGQUIT, SIGUSR1,
                                SIGUSR2, SIGWINCH, SIGALRM, SIGCONT};
#define NFORWARDED (sizeof FORWARDED / sizeof FORWARDED[0])

static volatile sig_atomic_t pending[NFORWARDED];

static void on_signal(int sig) {
    for (size_t i = 0; i < NFORWARDED; i++)
        if (FORWARDED[i] == sig) pending[i] = 1;
}

static void on_child(int sig) { (void)sig; }

/* The runtime's first child (the program), or the runtime itself before it has one. */
static pid_t program(pid_t runtime) {
    char path[80], buf[32];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)runtime, (int)runtime);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return runtime;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return runtime;
    buf[n] = '\0';
    long pid = strtol(buf, NULL, 10);
    return pid > 0 ? (pid_t)pid : runtime;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs("usage: neurodesk-launch RUNTIME [ARG]...\n", stderr);
        return 127;
    }
    sigset_t blocked, before;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGCHLD);
    for (size_t i = 0; i < NFORWARDED; i++) sigaddset(&blocked, FORWARDED[i]);
    sigprocmask(SIG_BLOCK, &blocked, &before);
    int handled[NFORWARDED];
    for (size_t i = 0; i < NFORWARDED; i++) {
        struct sigaction old;
        sigaction(FORWARDED[i], NULL, &old);
        handled[i] = old.sa_handler != SIG_IGN;
        if (handled[i]) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_signal;
            sigaction(FORWARDED[i], &sa, NULL);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);

    pid_t runtime = fork();
    if (runtime < 0) {
        perror("neurodesk-launch: fork");
        return 127;
    }
    if (runtime == 0) {
        for (size_t i = 0; i < NFORWARDED; i++)
            if (handled[i]) signal(FORWARDED[i], SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        if (isatty(0))
            setsid();
        else
            setpgid(0, 0);
        sigprocmask(SIG_SETMASK, &before, NULL);
        execvp(argv[1], argv + 1);
        fprintf(stderr, "neurodesk-launch: cannot run %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }

    sigset_t waiting = before;
    sigdelset(&waiting, SIGCHLD);
    for (size_t i = 0; i < NFORWARDED; i++) sigdelset(&waiting, FORWARDED[i]);
    int last = 0, status = 0;
    for (;;) {
        pid_t done = waitpid(runtime, &status, WNOHANG);
        if (done == runtime) break;
        sigsuspend(&waiting);
        for (size_t i = 0; i < NFORWARDED; i++) {
            if (!pending[i]) continue;
            pending[i] = 0;
            last = FORWARDED[i];
            kill(program(runtime), last);
        }
    }
    int sig = 0;
    if (WIFSIGNALED(status))
        sig = WTERMSIG(status);
    else if (last && WEXITSTATUS(status) == 128 + last)
        sig = last; /* bwrap reports a program killed by signal N as 128+N */
    if (sig && sig != SIGCONT && sig != SIGWINCH) {
        signal(sig, SIG_DFL);
        sigset_t only;
        sigemptyset(&only);
        sigaddset(&only, sig);
        sigprocmask(SIG_UNBLOCK, &only, NULL);
        kill(getpid(), sig);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + sig;
}
