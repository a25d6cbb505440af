/* The limit: a minimal C sd-bus service behind the same bus.
 *
 *   responder ADDRESS BIT_INTERVAL_S [api]
 *
 * Owns org.randomd.Random1 and serves, on /org/randomd/Random1, interface
 * org.randomd.Random1: Quick(u bits) -> s (a random integer below 2**bits,
 * from getrandom(2), bits <= 64) and Slow(u bits) -> o (a job that draws one
 * random bit per BIT_INTERVAL_S seconds, then sends Finished(sss) from
 * /org/randomd/Random1/jobs/<id>, unicast to the caller).  No job objects,
 * no properties: only what the benchmark calls.
 *
 * With "api", it also sends the broadcasts that randomd's API (API.md) asks
 * for, when randomd sends them (randomd/job_object.py, jobs.py, manager.py):
 *  - InterfacesAdded(oa{sa{sv}}) from the manager with the job's ten
 *    properties when it starts, before the reply;
 *  - PropertiesChanged(sa{sv}as) of BitsDone and Progress on the job every
 *    PROGRESS_US while it runs, but not in the last PROGRESS_US of its
 *    planned time, whose end tells it (randomd's rule: a 16-bit job of
 *    160 ms at 10 ms per bit announces no progress of its own; 64 bits, 5);
 *  - PropertiesChanged of BitsDone, Progress, State, Error and Finished on
 *    the job just before the unicast Finished;
 *  - PropertiesChanged of ActiveJobs and JobsStarted on the manager after a
 *    job starts or ends, at most every PROGRESS_US (a few per 1000 jobs).
 * OwnerUID is 0, the load generator's uid, rather than looked up: randomd
 * asks the bus once per connection, not per job.  That is what the API costs
 * in C.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

static sd_bus *bus;
static uint64_t interval_us;
static uint64_t last_id;
static int api_broadcasts;
/* API.md: progress at most about ten times a second per job; randomd also
 * announces ActiveJobs/JobsStarted at most this often. */
#define PROGRESS_US UINT64_C(100000)
static uint32_t active_jobs;
static uint64_t jobs_started;
static uint64_t jobs_announced_us;  /* CLOCK_MONOTONIC of the last announcement, 0: none */
static sd_event_source *jobs_announcement;

struct job {
    uint64_t id;
    uint32_t bits, done;
    uint64_t number;
    uint64_t created_us;
    uint64_t progress_at_us;  /* planned time (since the start) of the last progress told */
    char *owner;
    sd_event_source *timer;
};

static uint64_t clock_us(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void job_path(const struct job *job, char *path, size_t size) {
    snprintf(path, size, "/org/randomd/Random1/jobs/%" PRIu64, job->id);
}

static int send_and_unref(sd_bus_message *m, int r, const char *what) {
    if (r >= 0) r = sd_bus_send(bus, m, NULL);
    if (r < 0) fprintf(stderr, "responder: cannot send %s: %s\n", what, strerror(-r));
    sd_bus_message_unref(m);
    return r;
}

/* InterfacesAdded(o, a{sa{sv}}) from the manager, as randomd announces a new job. */
static int announce_added(const struct job *job) {
    char path[64], id[24];
    job_path(job, path, sizeof path);
    snprintf(id, sizeof id, "%" PRIu64, job->id);
    sd_bus_message *m = NULL;
    int r = sd_bus_message_new_signal(bus, &m, "/org/randomd/Random1",
                                      "org.freedesktop.DBus.ObjectManager", "InterfacesAdded");
    if (r >= 0) r = sd_bus_message_append(m, "o", path);
    if (r >= 0) r = sd_bus_message_open_container(m, 'a', "{sa{sv}}");
    if (r >= 0) r = sd_bus_message_open_container(m, 'e', "sa{sv}");
    if (r >= 0)
        r = sd_bus_message_append(m, "sa{sv}", "org.randomd.Random1.Job", 10,
                                  "Id", "s", id, "Bits", "u", job->bits, "BitsDone", "u", 0,
                                  "Progress", "d", 0.0, "State", "s", "running", "Error", "s", "",
                                  "OwnerUID", "u", 0, "Owner", "s", job->owner,
                                  "Created", "t", job->created_us, "Finished", "t", UINT64_C(0));
    if (r >= 0) r = sd_bus_message_close_container(m);
    if (r >= 0) r = sd_bus_message_close_container(m);
    return send_and_unref(m, r, "InterfacesAdded");
}

/* PropertiesChanged(s, a{sv}, as) on the job: its progress, or (done) its end. */
static int announce_job(const struct job *job, int done) {
    char path[64];
    job_path(job, path, sizeof path);
    sd_bus_message *m = NULL;
    int r = sd_bus_message_new_signal(bus, &m, path, "org.freedesktop.DBus.Properties",
                                      "PropertiesChanged");
    if (r >= 0)
        r = done ? sd_bus_message_append(m, "sa{sv}as", "org.randomd.Random1.Job", 5,
                                         "BitsDone", "u", job->bits, "Progress", "d", 1.0,
                                         "State", "s", "completed", "Error", "s", "",
                                         "Finished", "t", clock_us(CLOCK_REALTIME), 0)
                 : sd_bus_message_append(m, "sa{sv}as", "org.randomd.Random1.Job", 2,
                                         "BitsDone", "u", job->done,
                                         "Progress", "d", (double)job->done / job->bits, 0);
    return send_and_unref(m, r, "PropertiesChanged");
}

/* PropertiesChanged(s, a{sv}, as) of ActiveJobs and JobsStarted on the manager. */
static int announce_jobs(sd_event_source *source, uint64_t usec, void *userdata) {
    jobs_announcement = sd_event_source_disable_unref(jobs_announcement);
    jobs_announced_us = clock_us(CLOCK_MONOTONIC);
    sd_bus_message *m = NULL;
    int r = sd_bus_message_new_signal(bus, &m, "/org/randomd/Random1",
                                      "org.freedesktop.DBus.Properties", "PropertiesChanged");
    if (r >= 0)
        r = sd_bus_message_append(m, "sa{sv}as", "org.randomd.Random1", 2,
                                  "ActiveJobs", "u", active_jobs,
                                  "JobsStarted", "t", jobs_started, 0);
    send_and_unref(m, r, "PropertiesChanged");
    return 0;
}

/* After a job starts or ends: at once if the last announcement is older than
 * PROGRESS_US, else once it is, with the values of that time. */
static void jobs_changed(void) {
    if (jobs_announcement) return;
    uint64_t due = jobs_announced_us + PROGRESS_US;
    if (!jobs_announced_us || clock_us(CLOCK_MONOTONIC) >= due)
        announce_jobs(NULL, 0, NULL);
    else if (sd_event_add_time(sd_bus_get_event(bus), &jobs_announcement, CLOCK_MONOTONIC, due,
                               1, announce_jobs, NULL) < 0)
        announce_jobs(NULL, 0, NULL);
}

static uint64_t random_bits(uint32_t bits) {
    uint64_t value = 0;
    if (getrandom(&value, (bits + 7) / 8, 0) < 0) abort();
    return bits >= 64 ? value : value & ((UINT64_C(1) << bits) - 1);
}

/* The bits argument of Quick and Slow: > 0 when valid, else the error to return. */
static int read_bits(sd_bus_message *m, sd_bus_error *error, uint32_t *bits) {
    int r = sd_bus_message_read(m, "u", bits);
    if (r < 0) return r;
    if (*bits < 1 || *bits > 64)
        return sd_bus_error_set(error, "org.randomd.Random1.Error.InvalidArgument",
                                "bits must be between 1 and 64.");
    return 1;
}

static int on_quick(sd_bus_message *m, void *userdata, sd_bus_error *error) {
    uint32_t bits;
    int r = read_bits(m, error, &bits);
    if (r <= 0) return r;
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, random_bits(bits));
    return sd_bus_reply_method_return(m, "s", text);
}

static int on_bit(sd_event_source *source, uint64_t usec, void *userdata) {
    struct job *job = userdata;
    job->number = job->number << 1 | random_bits(1);
    if (++job->done < job->bits) {
        /* randomd tells progress at most every PROGRESS_US, not in the last one */
        uint64_t at = job->done * interval_us;
        if (api_broadcasts && at >= job->progress_at_us + PROGRESS_US &&
            at + PROGRESS_US < job->bits * interval_us) {
            job->progress_at_us = at;
            announce_job(job, 0);
        }
        sd_event_source_set_time_relative(source, interval_us);
        return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
    }
    char path[64], number[24];
    job_path(job, path, sizeof path);
    snprintf(number, sizeof number, "%" PRIu64, job->number);
    if (api_broadcasts) announce_job(job, 1);
    sd_bus_message *signal = NULL;
    int r = sd_bus_message_new_signal(bus, &signal, path, "org.randomd.Random1.Job", "Finished");
    if (r >= 0) r = sd_bus_message_set_destination(signal, job->owner);
    if (r >= 0) r = sd_bus_message_append(signal, "sss", "completed", number, "");
    send_and_unref(signal, r, "Finished");
    sd_event_source_disable_unref(job->timer);
    free(job->owner);
    free(job);
    active_jobs--;
    if (api_broadcasts) jobs_changed();
    return 0;
}

static int on_slow(sd_bus_message *m, void *userdata, sd_bus_error *error) {
    uint32_t bits;
    int r = read_bits(m, error, &bits);
    if (r <= 0) return r;
    struct job *job = calloc(1, sizeof *job);
    job->id = ++last_id;
    job->bits = bits;
    job->owner = strdup(sd_bus_message_get_sender(m));
    job->created_us = clock_us(CLOCK_REALTIME);
    /* accuracy 1 us: sd-event's default (250 ms) would batch the bits */
    r = sd_event_add_time_relative(sd_bus_get_event(bus), &job->timer, CLOCK_MONOTONIC, interval_us,
                                   1, on_bit, job);
    if (r < 0) return r;
    char path[64];
    job_path(job, path, sizeof path);
    active_jobs++;
    jobs_started++;
    if (api_broadcasts) {
        announce_added(job);  /* randomd too announces the job before replying */
        jobs_changed();
    }
    return sd_bus_reply_method_return(m, "o", path);
}

static const sd_bus_vtable vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("Quick", "u", SD_BUS_PARAM(bits), "s", SD_BUS_PARAM(number), on_quick,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Slow", "u", SD_BUS_PARAM(bits), "o", SD_BUS_PARAM(job), on_slow,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

int main(int argc, char **argv) {
    if (argc < 3 || (argc > 3 && strcmp(argv[3], "api") != 0)) {
        fprintf(stderr, "usage: responder ADDRESS BIT_INTERVAL_S [api]\n");
        return 2;
    }
    interval_us = (uint64_t)(atof(argv[2]) * 1e6);
    api_broadcasts = argc > 3;
    sd_event *event;
    int r = sd_event_default(&event);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    if (r >= 0) r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
    if (r >= 0) r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
    if (r >= 0) r = sd_bus_new(&bus);
    if (r >= 0) r = sd_bus_set_address(bus, argv[1]);
    if (r >= 0) r = sd_bus_set_bus_client(bus, 1);
    if (r >= 0) r = sd_bus_start(bus);
    if (r >= 0) r = sd_bus_attach_event(bus, event, 0);
    if (r >= 0) r = sd_bus_add_object_vtable(bus, NULL, "/org/randomd/Random1", "org.randomd.Random1",
                                             vtable, NULL);
    if (r >= 0) r = sd_bus_request_name(bus, "org.randomd.Random1", 0);
    if (r < 0) {
        fprintf(stderr, "responder: %s\n", strerror(-r));
        return 1;
    }
    r = sd_event_loop(event);
    sd_bus_flush_close_unref(bus);
    return r < 0 ? 1 : 0;
}
