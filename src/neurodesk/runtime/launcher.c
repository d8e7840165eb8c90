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

extern char **environ;

static const char *renamed(const char *entry) {
    static const char *const prefixes[] = {"APPTAINERENV_", "SINGULARITYENV_"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(entry, prefixes[i], n) == 0 && entry[n] != '=' && entry[n] != '\0')
            return entry + n;
    }
    return NULL;
}

/* argv with the --setenv words of -e K put before its last K words (NULL-terminated). */
static char **with_env(char **argv, int argc, int keep_last) {
    size_t count = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "LC_", 3) == 0 || renamed(*e)) count++;
    char **out = calloc((size_t)argc + 3 * count + 1, sizeof *out);
    if (!out || keep_last < 0 || keep_last > argc) return argv;
    int head = argc - keep_last, n = 0;
    for (int i = 0; i < head; i++) out[n++] = argv[i];
    for (int pass = 0; pass < 2; pass++) {
        for (char **e = environ; *e; e++) {
            const char *name = pass == 0 ? (strncmp(*e, "LC_", 3) == 0 ? *e : NULL) : renamed(*e);
            const char *eq = name ? strchr(name, '=') : NULL;
            if (!eq) continue;
            out[n++] = "--setenv";
            out[n++] = strndup(name, (size_t)(eq - name));
            out[n++] = (char *)eq + 1;
        }
    }
    for (int i = head; i < argc; i++) out[n++] = argv[i];
    out[n] = NULL;
    return out;
}

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
    char **run = argv + 1;
    if (argc > 3 && strcmp(argv[1], "-e") == 0)
        run = with_env(argv + 3, argc - 3, atoi(argv[2]));
    if (!run[0]) {
        fputs("usage: neurodesk-launch [-e K] RUNTIME [ARG]...\n", stderr);
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
        execvp(run[0], run);
        fprintf(stderr, "neurodesk-launch: cannot run %s: %s\n", run[0], strerror(errno));
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
