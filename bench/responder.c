/* The limit: a minimal C sd-bus service behind the same bus.
 *
 *   responder ADDRESS BIT_INTERVAL_S
 *
 * Owns org.randomd.Random1 and serves, on /org/randomd/Random1, interface
 * org.randomd.Random1: Quick(u bits) -> s (a random integer below 2**bits,
 * from getrandom(2), bits <= 64) and Slow(u bits) -> o (a job that draws one
 * random bit per BIT_INTERVAL_S seconds, then sends Finished(sss) from
 * /org/randomd/Random1/jobs/<id>, unicast to the caller).  No job objects,
 * no properties: only what the benchmark calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

static sd_bus *bus;
static uint64_t interval_us;
static uint64_t last_id;

struct job {
    uint64_t id;
    uint32_t bits, done;
    uint64_t number;
    char *owner;
    sd_event_source *timer;
};

static uint64_t random_bits(uint32_t bits) {
    uint64_t value = 0;
    if (getrandom(&value, (bits + 7) / 8, 0) < 0) abort();
    return bits >= 64 ? value : value & ((UINT64_C(1) << bits) - 1);
}

static int on_quick(sd_bus_message *m, void *userdata, sd_bus_error *error) {
    uint32_t bits;
    int r = sd_bus_message_read(m, "u", &bits);
    if (r < 0) return r;
    if (bits < 1 || bits > 64)
        return sd_bus_error_set(error, "org.randomd.Random1.Error.InvalidArgument",
                                "bits must be between 1 and 64.");
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, random_bits(bits));
    return sd_bus_reply_method_return(m, "s", text);
}

static int on_bit(sd_event_source *source, uint64_t usec, void *userdata) {
    struct job *job = userdata;
    job->number = job->number << 1 | random_bits(1);
    if (++job->done < job->bits) {
        sd_event_source_set_time_relative(source, interval_us);
        return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
    }
    char path[64], number[24];
    snprintf(path, sizeof path, "/org/randomd/Random1/jobs/%" PRIu64, job->id);
    snprintf(number, sizeof number, "%" PRIu64, job->number);
    sd_bus_message *signal = NULL;
    int r = sd_bus_message_new_signal(bus, &signal, path, "org.randomd.Random1.Job", "Finished");
    if (r >= 0) r = sd_bus_message_set_destination(signal, job->owner);
    if (r >= 0) r = sd_bus_message_append(signal, "sss", "completed", number, "");
    if (r >= 0) r = sd_bus_send(bus, signal, NULL);
    if (r < 0) fprintf(stderr, "responder: cannot send Finished: %s\n", strerror(-r));
    sd_bus_message_unref(signal);
    sd_event_source_disable_unref(job->timer);
    free(job->owner);
    free(job);
    return 0;
}

static int on_slow(sd_bus_message *m, void *userdata, sd_bus_error *error) {
    uint32_t bits;
    int r = sd_bus_message_read(m, "u", &bits);
    if (r < 0) return r;
    if (bits < 1 || bits > 64)
        return sd_bus_error_set(error, "org.randomd.Random1.Error.InvalidArgument",
                                "bits must be between 1 and 64.");
    struct job *job = calloc(1, sizeof *job);
    job->id = ++last_id;
    job->bits = bits;
    job->owner = strdup(sd_bus_message_get_sender(m));
    /* accuracy 1 us: sd-event's default (250 ms) would batch the bits */
    r = sd_event_add_time_relative(sd_bus_get_event(bus), &job->timer, CLOCK_MONOTONIC, interval_us,
                                   1, on_bit, job);
    if (r < 0) return r;
    char path[64];
    snprintf(path, sizeof path, "/org/randomd/Random1/jobs/%" PRIu64, job->id);
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
    if (argc < 3) {
        fprintf(stderr, "usage: responder ADDRESS BIT_INTERVAL_S\n");
        return 2;
    }
    interval_us = (uint64_t)(atof(argv[2]) * 1e6);
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
