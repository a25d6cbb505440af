/* The load generator of bench/: one C program (sd-bus, sd-event), four modes.
 *
 *   loadgen quick ADDRESS K P WARMUP_S DURATION_S TARGET [CPU_PID BUS_PID]
 *       K connections with P calls in flight each, for WARMUP_S then
 *       DURATION_S seconds.  TARGET "service" calls
 *       org.randomd.Random1.Quick(u 16); "bus" calls org.freedesktop.DBus.GetId.
 *       Prints one JSON object: calls/s and latency percentiles of the
 *       measured window, and the CPU time CPU_PID and BUS_PID used in it.
 *
 *   loadgen slow ADDRESS K JOBS BITS TIMEOUT_S [STALL_PID STALL_AT_MS STALL_MS]
 *       JOBS Slow(u BITS) calls at once, spread over K connections; waits
 *       until every job's Finished signal (unicast to its caller) arrived.
 *       With STALL_PID, SIGSTOPs that process (the bus) STALL_AT_MS after
 *       the first call and SIGCONTs it STALL_MS later.  Prints one JSON object.
 *
 *   loadgen bystanders ADDRESS COUNT MATCH
 *       COUNT connections that each add MATCH and then only drain their
 *       sockets (raw reads, no parsing: an idle client costs the bus, not
 *       the machine).  Prints "ready" once every AddMatch is answered; runs
 *       until its stdin closes.
 *
 *   loadgen waitname ADDRESS NAME
 *       Prints "armed" once it watches NameOwnerChanged for NAME, then the
 *       CLOCK_MONOTONIC time in ns at which NAME got an owner, and exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define NAME "org.randomd.Random1"
#define PATH "/org/randomd/Random1"
#define IFACE "org.randomd.Random1"
#define JOB_IFACE "org.randomd.Random1.Job"

static void die(const char *what, int r) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(r < 0 ? -r : r));
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static sd_bus *open_bus(const char *address, sd_event *event) {
    sd_bus *bus = NULL;
    int r = sd_bus_new(&bus);
    if (r < 0) die("sd_bus_new", r);
    if ((r = sd_bus_set_address(bus, address)) < 0) die("sd_bus_set_address", r);
    if ((r = sd_bus_set_bus_client(bus, 1)) < 0) die("sd_bus_set_bus_client", r);
    if ((r = sd_bus_start(bus)) < 0) die("sd_bus_start", r);
    const char *unique;
    if ((r = sd_bus_get_unique_name(bus, &unique)) < 0) die("Hello", r);  /* waits for Hello */
    if (event && (r = sd_bus_attach_event(bus, event, 0)) < 0) die("sd_bus_attach_event", r);
    return bus;
}

/* utime + stime of a process, in seconds (0 when pid is 0 or gone). */
static double proc_cpu(int pid) {
    if (pid <= 0) return 0;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long utime = 0, stime = 0;
    /* after ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* *text* as the inside of a JSON string (quotes, backslashes, control characters escaped). */
static const char *json_str(const char *text) {
    static char out[1024];
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c && o < sizeof out - 8; c++) {
        if (*c == '"' || *c == '\\') { out[o++] = '\\'; out[o++] = (char)*c; }
        else if (*c < 0x20) o += (size_t)snprintf(out + o, 8, "\\u%04x", *c);
        else out[o++] = (char)*c;
    }
    out[o] = 0;
    return out;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- quick ------------------------------------------------------------ */

struct inflight { sd_bus *bus; uint64_t sent; };

static struct {
    int target_bus, measuring, stopping;
    uint64_t t_start, t_end, calls, errors, outstanding;
    uint64_t *lat; size_t nlat, caplat;
    double cpu0, bus_cpu0, self_cpu0, cpu1, bus_cpu1, self_cpu1;
    int cpu_pid, bus_pid;
    char first_error[256];
} Q;

static int on_quick_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

static void issue_quick(struct inflight *f) {
    sd_bus_message *m = NULL;
    int r;
    if (Q.target_bus)
        r = sd_bus_message_new_method_call(f->bus, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "GetId");
    else {
        r = sd_bus_message_new_method_call(f->bus, &m, NAME, PATH, IFACE, "Quick");
        if (r >= 0) r = sd_bus_message_append(m, "u", (uint32_t)16);
    }
    if (r < 0) die("new_method_call", r);
    f->sent = now_ns();
    r = sd_bus_call_async(f->bus, NULL, m, on_quick_reply, f, 30 * 1000000ull);
    if (r < 0) die("sd_bus_call_async", r);
    sd_bus_message_unref(m);
    Q.outstanding++;
}

static int on_quick_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    struct inflight *f = userdata;
    uint64_t t = now_ns();
    Q.outstanding--;
    if (Q.measuring) {
        if (sd_bus_message_is_method_error(m, NULL)) {
            if (!Q.errors++) {
                const sd_bus_error *e = sd_bus_message_get_error(m);
                snprintf(Q.first_error, sizeof Q.first_error, "%s", e && e->name ? e->name : "?");
            }
        } else {
            Q.calls++;
            if (Q.nlat == Q.caplat) {
                Q.caplat = Q.caplat ? Q.caplat * 2 : 65536;
                Q.lat = realloc(Q.lat, Q.caplat * sizeof *Q.lat);
                if (!Q.lat) die("realloc", ENOMEM);
            }
            Q.lat[Q.nlat++] = t - f->sent;
        }
    }
    if (!Q.stopping) issue_quick(f);
    else if (!Q.outstanding) sd_event_exit(sd_bus_get_event(f->bus), 0);
    return 1;
}

static int on_quick_start(sd_event_source *s, uint64_t usec, void *userdata) {
    Q.cpu0 = proc_cpu(Q.cpu_pid);
    Q.bus_cpu0 = proc_cpu(Q.bus_pid);
    Q.self_cpu0 = self_cpu();
    Q.t_start = now_ns();
    Q.measuring = 1;
    return 0;
}

static int on_quick_stop(sd_event_source *s, uint64_t usec, void *userdata) {
    Q.t_end = now_ns();
    Q.cpu1 = proc_cpu(Q.cpu_pid);
    Q.bus_cpu1 = proc_cpu(Q.bus_pid);
    Q.self_cpu1 = self_cpu();
    Q.measuring = 0;
    Q.stopping = 1;
    return 0;
}

static int on_quick_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
    sd_event_exit(sd_event_source_get_event(s), 0);  /* some calls never came back */
    return 0;
}

static int mode_quick(int argc, char **argv) {
    if (argc < 7) die("usage: quick ADDRESS K P WARMUP_S DURATION_S TARGET [CPU_PID BUS_PID]", EINVAL);
    const char *address = argv[1];
    int k = atoi(argv[2]), p = atoi(argv[3]);
    double warmup = atof(argv[4]), duration = atof(argv[5]);
    Q.target_bus = strcmp(argv[6], "bus") == 0;
    Q.cpu_pid = argc > 7 ? atoi(argv[7]) : 0;
    Q.bus_pid = argc > 8 ? atoi(argv[8]) : 0;
    sd_event *event;
    int r = sd_event_new(&event);
    if (r < 0) die("sd_event_new", r);
    struct inflight *slots = calloc((size_t)k * p, sizeof *slots);
    for (int i = 0; i < k; i++) {
        sd_bus *bus = open_bus(address, event);
        for (int j = 0; j < p; j++) slots[i * p + j].bus = bus;
    }
    uint64_t w = (uint64_t)(warmup * 1e6), d = (uint64_t)(duration * 1e6);
    sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, w, 1, on_quick_start, NULL);
    sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, w + d, 1, on_quick_stop, NULL);
    sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, w + d + 30 * 1000000ull, 1000, on_quick_deadline, NULL);
    for (int i = 0; i < k * p; i++) issue_quick(&slots[i]);
    r = sd_event_loop(event);
    if (r < 0) die("sd_event_loop", r);
    double secs = (Q.t_end - Q.t_start) / 1e9;
    qsort(Q.lat, Q.nlat, sizeof *Q.lat, cmp_u64);
#define PCT(q) (Q.nlat ? Q.lat[(size_t)((Q.nlat - 1) * (q))] / 1e3 : 0.0)
    printf("{\"conns\": %d, \"inflight\": %d, \"seconds\": %.4f, \"calls\": %" PRIu64
           ", \"errors\": %" PRIu64 ", \"first_error\": \"%s\", \"calls_per_s\": %.1f"
           ", \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f"
           ", \"service_cpu_s\": %.3f, \"bus_cpu_s\": %.3f, \"loadgen_cpu_s\": %.3f}\n",
           k, p, secs, Q.calls, Q.errors, json_str(Q.first_error), Q.calls / secs,
           PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0),
           Q.cpu1 - Q.cpu0, Q.bus_cpu1 - Q.bus_cpu0, Q.self_cpu1 - Q.self_cpu0);
    return 0;
}

/* ---- slow ------------------------------------------------------------- */

static struct {
    int jobs, replies, errors, finished, completed, stall_pid, stalled, service_lost;
    uint64_t t0, t_replies, t_finished;
    char **reply_paths, **finished_paths;
    char first_error[256];
    sd_event *event;
} S;

/* Done once every call is answered and every job it started has finished. */
static void check_slow_done(void) {
    if (S.replies == S.jobs && S.finished >= S.replies - S.errors) {
        if (!S.t_finished) S.t_finished = now_ns();
        sd_event_exit(S.event, 0);
    }
}

static int on_slow_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    if (sd_bus_message_is_method_error(m, NULL)) {
        if (!S.errors++) {
            const sd_bus_error *e = sd_bus_message_get_error(m);
            snprintf(S.first_error, sizeof S.first_error, "%s: %s", e && e->name ? e->name : "?",
                     e && e->message ? e->message : "");
        }
    } else {
        const char *path = NULL;
        if (sd_bus_message_read(m, "o", &path) >= 0 && path)
            S.reply_paths[S.replies] = strdup(path);
    }
    if (++S.replies == S.jobs) S.t_replies = now_ns();
    check_slow_done();
    return 1;
}

static int on_filter(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    if (!sd_bus_message_is_signal(m, JOB_IFACE, "Finished")) return 0;
    const char *state = NULL, *number = NULL, *error = NULL;
    if (sd_bus_message_read(m, "sss", &state, &number, &error) < 0) return 0;
    if (S.finished < S.jobs) S.finished_paths[S.finished] = strdup(sd_bus_message_get_path(m));
    S.finished++;
    if (strcmp(state, "completed") == 0 && number[0]) S.completed++;
    check_slow_done();
    return 0;
}

/* The service left the bus (it crashed): nothing more will come. */
static int on_service_lost(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    const char *name, *old, *new;
    if (sd_bus_message_read(m, "sss", &name, &old, &new) >= 0 && !new[0]) {
        S.service_lost = 1;
        sd_event_exit(S.event, 0);
    }
    return 0;
}

static int on_stall(sd_event_source *s, uint64_t usec, void *userdata) {
    if (!S.stalled) { kill(S.stall_pid, SIGSTOP); S.stalled = 1; }
    else { kill(S.stall_pid, SIGCONT); S.stalled = 2; }
    return 0;
}

static int on_slow_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
    sd_event_exit(S.event, 0);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    if (!x || !y) return !x - !y;
    return strcmp(x, y);
}

static int mode_slow(int argc, char **argv) {
    if (argc < 6) die("usage: slow ADDRESS K JOBS BITS TIMEOUT_S [STALL_PID STALL_AT_MS STALL_MS]", EINVAL);
    const char *address = argv[1];
    int k = atoi(argv[2]);
    S.jobs = atoi(argv[3]);
    uint32_t bits = (uint32_t)atoi(argv[4]);
    double timeout = atof(argv[5]);
    S.stall_pid = argc > 6 ? atoi(argv[6]) : 0;
    uint64_t stall_at = argc > 7 ? (uint64_t)atoll(argv[7]) * 1000 : 0;
    uint64_t stall_for = argc > 8 ? (uint64_t)atoll(argv[8]) * 1000 : 0;
    S.reply_paths = calloc(S.jobs, sizeof(char *));
    S.finished_paths = calloc(S.jobs, sizeof(char *));
    int r = sd_event_new(&S.event);
    if (r < 0) die("sd_event_new", r);
    sd_bus **buses = calloc(k, sizeof *buses);
    for (int i = 0; i < k; i++) {
        buses[i] = open_bus(address, S.event);
        /* Finished is unicast: a local filter sees it, no match rule needed. */
        if ((r = sd_bus_add_filter(buses[i], NULL, on_filter, NULL)) < 0) die("sd_bus_add_filter", r);
    }
    r = sd_bus_add_match(buses[0], NULL, "type='signal',sender='org.freedesktop.DBus',"
                         "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" NAME "'",
                         on_service_lost, NULL);
    if (r < 0) die("AddMatch", r);
    sd_event_add_time_relative(S.event, NULL, CLOCK_MONOTONIC, (uint64_t)(timeout * 1e6), 1000,
                               on_slow_timeout, NULL);
    if (S.stall_pid > 0) {
        sd_event_add_time_relative(S.event, NULL, CLOCK_MONOTONIC, stall_at, 1, on_stall, NULL);
        sd_event_add_time_relative(S.event, NULL, CLOCK_MONOTONIC, stall_at + stall_for, 1, on_stall, NULL);
    }
    S.t0 = now_ns();
    for (int i = 0; i < S.jobs; i++) {
        sd_bus *bus = buses[i % k];
        sd_bus_message *m = NULL;
        r = sd_bus_message_new_method_call(bus, &m, NAME, PATH, IFACE, "Slow");
        if (r >= 0) r = sd_bus_message_append(m, "u", bits);
        if (r < 0) die("new_method_call", r);
        r = sd_bus_call_async(bus, NULL, m, on_slow_reply, NULL, (uint64_t)(timeout * 1e6));
        if (r < 0) die("sd_bus_call_async", r);
        sd_bus_message_unref(m);
    }
    r = sd_event_loop(S.event);
    if (S.stall_pid > 0 && S.stalled == 1) kill(S.stall_pid, SIGCONT);
    if (r < 0) die("sd_event_loop", r);
    /* Every reply's job must have exactly one Finished. */
    int got = S.replies - S.errors, nfin = S.finished < S.jobs ? S.finished : S.jobs;
    qsort(S.reply_paths, S.jobs, sizeof(char *), cmp_str);
    qsort(S.finished_paths, nfin, sizeof(char *), cmp_str);
    int matched = 0, i = 0, j = 0, dups = 0;
    for (j = 1; j < nfin; j++) dups += S.finished_paths[j] && S.finished_paths[j - 1] &&
                                        !strcmp(S.finished_paths[j], S.finished_paths[j - 1]);
    for (i = 0, j = 0; i < S.jobs && j < nfin;) {
        if (!S.reply_paths[i]) { i++; continue; }
        int c = strcmp(S.reply_paths[i], S.finished_paths[j]);
        if (c == 0) { matched++; i++; j++; } else if (c < 0) i++; else j++;
    }
    uint64_t end = S.t_finished ? S.t_finished : now_ns();
    printf("{\"jobs\": %d, \"conns\": %d, \"bits\": %u, \"replies\": %d, \"errors\": %d"
           ", \"first_error\": \"%s\", \"finished\": %d, \"completed\": %d, \"matched\": %d"
           ", \"duplicates\": %d, \"all_finished\": %s, \"replies_s\": %.4f, \"finished_s\": %.4f"
           ", \"stalled\": %s, \"service_lost\": %s, \"loadgen_cpu_s\": %.3f}\n",
           S.jobs, k, bits, S.replies, S.errors, json_str(S.first_error), S.finished, S.completed, matched,
           dups, (matched == S.jobs && S.completed == S.jobs && !dups) ? "true" : "false",
           S.t_replies ? (S.t_replies - S.t0) / 1e9 : -1.0, (end - S.t0) / 1e9,
           S.stall_pid > 0 ? "true" : "false", S.service_lost ? "true" : "false", self_cpu());
    (void)got;
    return 0;
}

/* ---- bystanders ------------------------------------------------------- */

static int mode_bystanders(int argc, char **argv) {
    if (argc < 4) die("usage: bystanders ADDRESS COUNT MATCH", EINVAL);
    const char *address = argv[1], *match = argv[3];
    int count = atoi(argv[2]);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < count; i++) {
        sd_bus *bus = open_bus(address, NULL);
        int r = sd_bus_add_match(bus, NULL, match, NULL, NULL);  /* synchronous AddMatch */
        if (r < 0) die("AddMatch", r);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = sd_bus_get_fd(bus)};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) die("epoll_ctl", errno);
        /* the sd_bus object is never used again: its socket is drained raw */
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLHUP, .data.fd = 0};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    printf("ready\n");
    fflush(stdout);
    static char buf[1 << 16];
    uint64_t bytes = 0;
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait", errno);
        for (int i = 0; i < n; i++) {
            ssize_t got = read(evs[i].data.fd, buf, sizeof buf);
            if (evs[i].data.fd == 0 && got <= 0) {
                fprintf(stderr, "bystanders: %" PRIu64 " bytes drained\n", bytes);
                return 0;
            }
            if (got > 0) bytes += (uint64_t)got;
            else if (got == 0) epoll_ctl(ep, EPOLL_CTL_DEL, evs[i].data.fd, NULL);
        }
    }
}

/* ---- waitname --------------------------------------------------------- */

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
    uint64_t t = now_ns();
    const char *name, *old, *new;
    if (sd_bus_message_read(m, "sss", &name, &old, &new) >= 0 && new[0]) {
        printf("%" PRIu64 "\n", t);
        fflush(stdout);
        exit(0);
    }
    return 0;
}

static int mode_waitname(int argc, char **argv) {
    if (argc < 3) die("usage: waitname ADDRESS NAME", EINVAL);
    sd_bus *bus = open_bus(argv[1], NULL);
    char match[512];
    snprintf(match, sizeof match, "type='signal',sender='org.freedesktop.DBus',"
             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'", argv[2]);
    int r = sd_bus_add_match(bus, NULL, match, on_owner_changed, NULL);
    if (r < 0) die("AddMatch", r);
    printf("armed\n");
    fflush(stdout);
    for (;;) {
        r = sd_bus_process(bus, NULL);
        if (r < 0) die("sd_bus_process", r);
        if (r > 0) continue;
        r = sd_bus_wait(bus, UINT64_MAX);
        if (r < 0 && r != -EINTR) die("sd_bus_wait", r);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: loadgen quick|slow|bystanders|waitname ...", EINVAL);
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(argv[1], "quick")) return mode_quick(argc - 1, argv + 1);
    if (!strcmp(argv[1], "slow")) return mode_slow(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bystanders")) return mode_bystanders(argc - 1, argv + 1);
    if (!strcmp(argv[1], "waitname")) return mode_waitname(argc - 1, argv + 1);
    die("unknown mode", EINVAL);
    return 2;
}
