/*
 * boxguard queue: the pending-ops queue from the command line.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxguard/boxguard.h"
#include "cli.h"
#include "boxguard/typeids.h"

const char cli_queue_usage[] =
    "usage: boxguard queue COMMAND --store DIR [options] [--json]\n"
    "  (--json: one JSON object per answer, for every command)\n"
    "  enqueue --idem KEY [--lane normal|emergency] [--op JSON]   (op from\n"
    "          stdin when --op is absent); a key already pending is not\n"
    "          enqueued twice (exit 1, says so)\n"
    "  lease   [--lease-seconds N] hand out the oldest op not leased,\n"
    "          emergency lane first; it is not handed out again for N seconds\n"
    "          (default 30) unless acked or nacked, by this process or the\n"
    "          next (at-least-once: a lease lost to a power cut ends early)\n"
    "  ack     --id ID             remove a pending op, then compact the\n"
    "          pending_ops box when that is due\n"
    "  nack    --id ID --error TEXT  count a failed attempt; past the limit\n"
    "          (--max-attempts, default 5) the op moves to failed_ops\n"
    "  retry   --idem KEY          put a failed op back\n"
    "  purge                       drop failed ops older than 30 days\n"
    "  failed                      list failed ops\n"
    "  stats                       pending, leased (still held), failed\n"
    "  rebuild-index               rebuild the index from the pending_ops box\n"
    "  compact                     drop acked ops from the pending_ops box\n"
    "  lock    --owner NAME [--release]  take (or release) the processing\n"
    "          lock; a lock older than 2 minutes is stale and taken over\n";

static void print_op(const bg_queue_op *op, int as_json)
{
    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)op->id);
        cJSON_AddStringToObject(o, "idem", op->idem);
        cJSON_AddStringToObject(o, "lane", op->lane ? "emergency" : "normal");
        cJSON_AddNumberToObject(o, "attempts", op->attempts);
        cJSON_AddNumberToObject(o, "enqueued_ms", (double)op->enqueued_ms);
        if (op->lease_until_ms)
            cJSON_AddNumberToObject(o, "lease_until_ms",
                                    (double)op->lease_until_ms);
        if (op->last_error)
            cJSON_AddStringToObject(o, "last_error", op->last_error);
        cJSON *p = cJSON_ParseWithLength(op->payload, op->payload_len);
        if (p)
            cJSON_AddItemToObject(o, "op", p);
        cli_print_json(o);
    } else {
        printf("%" PRIu64 " %s %s attempts=%u%s%s %.*s\n", op->id,
               op->lane ? "emergency" : "normal", op->idem,
               (unsigned)op->attempts, op->last_error ? " error=" : "",
               op->last_error ? op->last_error : "", (int)op->payload_len,
               op->payload);
    }
}

static int print_failed(void *arg, const bg_queue_op *op)
{
    print_op(op, *(int *)arg);
    return 0;
}

int cli_cmd_queue(int argc, char **argv)
{
    if (argc < 3) {
        fputs(cli_queue_usage, stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[2], *store = NULL, *idem = NULL, *lane = "normal",
               *opjson = NULL, *id_s = NULL, *error = NULL, *owner = NULL,
               *max_s = NULL, *lease_s = NULL;
    int as_json = 0, release = 0;
    const opt opts[] = {{"--store", &store, NULL},
                        {"--idem", &idem, NULL},
                        {"--lane", &lane, NULL},
                        {"--op", &opjson, NULL},
                        {"--id", &id_s, NULL},
                        {"--error", &error, NULL},
                        {"--owner", &owner, NULL},
                        {"--max-attempts", &max_s, NULL},
                        {"--lease-seconds", &lease_s, NULL},
                        {"--json", NULL, &as_json},
                        {"--release", NULL, &release},
                        {NULL, NULL, NULL}};
    if (cli_parse_opts(argc, argv, 3, opts, "queue", NULL, NULL))
        return EXIT_USAGE;
    static const char *const subs[] = {
        "enqueue", "lease", "ack",           "nack",    "retry", "purge",
        "failed",  "stats", "rebuild-index", "compact", "lock"};
    int known = 0;
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        known |= !strcmp(sub, subs[i]);
    if (!known) {
        cli_fail("queue: unknown command '%s' (see boxguard queue --help)",
                 sub);
        return EXIT_USAGE;
    }
    if (!store) {
        cli_fail("queue %s needs --store DIR", sub);
        return EXIT_USAGE;
    }
    uint64_t id = 0;
    if ((!strcmp(sub, "ack") || !strcmp(sub, "nack"))) {
        unsigned long long v = 0;
        if (cli_parse_number(id_s, 1, UINT64_MAX, &v)) {
            cli_fail("queue %s needs --id ID (a positive integer)", sub);
            return EXIT_USAGE;
        }
        id = v;
    }
    if ((!strcmp(sub, "enqueue") || !strcmp(sub, "retry")) && !idem) {
        cli_fail("queue %s needs --idem KEY", sub);
        return EXIT_USAGE;
    }
    if (!strcmp(sub, "nack") && !error) {
        cli_fail("queue nack needs --error TEXT (what went wrong, kept with "
                 "the op)");
        return EXIT_USAGE;
    }
    if (!strcmp(sub, "lock") && !owner) {
        cli_fail("queue lock needs --owner NAME");
        return EXIT_USAGE;
    }
    if (strcmp(lane, "normal") && strcmp(lane, "emergency")) {
        cli_fail("queue: --lane must be normal or emergency, not '%s'", lane);
        return EXIT_USAGE;
    }
    bg_queue_opts qo;
    bg_queue_opts_init(&qo);
    if (max_s) {
        unsigned long long v;
        if (cli_parse_number(max_s, 1, 1000000, &v)) {
            cli_fail("queue: --max-attempts must be 1..1000000");
            return EXIT_USAGE;
        }
        qo.max_attempts = (uint32_t)v;
    }
    if (lease_s) {
        unsigned long long v;
        if (strcmp(sub, "lease")) {
            cli_fail("queue %s: --lease-seconds is an option of queue lease",
                     sub);
            return EXIT_USAGE;
        }
        if (cli_parse_number(lease_s, 1, 43200, &v)) {
            cli_fail("queue lease: --lease-seconds must be 1..43200 (12 "
                     "hours)");
            return EXIT_USAGE;
        }
        qo.lease_ms = (int64_t)v * 1000;
    }
    char *owned = NULL;
    size_t oplen = 0;
    if (!strcmp(sub, "enqueue")) {
        int vrc = cli_value_arg(opjson, "op", &owned, &opjson, &oplen);
        if (vrc)
            return vrc;
    }
    args a = {.cmd = sub, .store = store, .creates = !strcmp(sub, "enqueue")};
    int writing = strcmp(sub, "stats") && strcmp(sub, "failed");
    session ss;
    bg_queue *q = NULL;
    int rc = cli_begin(&a, writing, NULL, 0, &ss);
    if (rc) {
        free(owned);
        return cli_end(&ss, rc);
    }
    bg_store *s = ss.s;
    bg_err err = bg_queue_open(s, &qo, &q);
    if (err) {
        rc = cli_report(s, err, "cannot open the queue");
        goto out;
    }
    bg_queue_op op;
    int flag = 0;
    uint64_t n = 0;
    if (!strcmp(sub, "enqueue")) {
        err = bg_queue_enqueue(
            q, strcmp(lane, "emergency") ? BG_LANE_NORMAL : BG_LANE_EMERGENCY,
            idem, opjson, oplen, &id);
        if (err == BG_EEXISTS) {
            if (as_json)
                printf("{\"id\":%" PRIu64 ",\"duplicate\":true}\n", id);
            else
                printf("duplicate: '%s' is already pending as %" PRIu64
                       "; not enqueued\n",
                       idem, id);
            rc = EXIT_NEGATIVE;
            err = 0;
        } else if (!err) {
            if (as_json)
                printf("{\"id\":%" PRIu64 ",\"duplicate\":false}\n", id);
            else
                printf("%" PRIu64 "\n", id);
        }
    } else if (!strcmp(sub, "lease")) {
        err = bg_queue_lease(q, &op);
        if (!err) {
            print_op(&op, as_json);
            bg_queue_op_clear(&op);
        }
    } else if (!strcmp(sub, "ack")) {
        err = bg_queue_ack(q, id);
        if (!err && as_json)
            printf("{\"acked\":%" PRIu64 "}\n", id);
        /* The ack is durable; this process has time left for the upkeep
         * (a compaction when due), whose failure changes nothing. */
        if (!err && bg_queue_maintain(q, &flag))
            fprintf(stderr,
                    "boxguard: queue: acked; compaction left for "
                    "later: %s\n",
                    bg_store_detail(s));
    } else if (!strcmp(sub, "nack")) {
        err = bg_queue_nack(q, id, error, &flag);
        if (!err && as_json)
            printf("{\"id\":%" PRIu64 ",\"failed\":%s}\n", id,
                   flag ? "true" : "false");
        else if (!err && flag)
            printf("%" PRIu64 " moved to failed_ops after %u attempts\n", id,
                   (unsigned)qo.max_attempts);
    } else if (!strcmp(sub, "retry")) {
        err = bg_queue_retry(q, idem, &id);
        if (!err && as_json)
            printf("{\"id\":%" PRIu64 "}\n", id);
        else if (!err)
            printf("%" PRIu64 "\n", id);
    } else if (!strcmp(sub, "purge")) {
        err = bg_queue_purge(q, &n);
        if (!err && as_json)
            printf("{\"purged\":%" PRIu64 "}\n", n);
        else if (!err)
            printf("purged %" PRIu64 " failed ops\n", n);
    } else if (!strcmp(sub, "failed")) {
        err = bg_queue_list_failed(q, print_failed, &as_json);
    } else if (!strcmp(sub, "rebuild-index")) {
        err = bg_queue_rebuild(q);
    } else if (!strcmp(sub, "compact")) {
        err = bg_queue_compact(q);
        if (!err && as_json)
            puts("{\"compacted\":true}");
    } else if (!strcmp(sub, "lock")) {
        if (release) {
            err = bg_queue_unlock(q, owner);
            if (!err && as_json)
                puts("{\"locked\":false}");
        } else {
            err = bg_queue_lock(q, owner, &flag);
            if (!err && as_json)
                printf("{\"locked\":true,\"took_over_stale\":%s}\n",
                       flag ? "true" : "false");
            else if (!err && flag)
                printf("took over a stale lock (audited)\n");
        }
    }
    if (!err && (!strcmp(sub, "stats") || !strcmp(sub, "rebuild-index"))) {
        bg_queue_stats st;
        bg_queue_stats_of(q, &st);
        if (as_json)
            printf("{\"pending\":%" PRIu64 ",\"emergency\":%" PRIu64
                   ",\"normal\":%" PRIu64 ",\"leased\":%" PRIu64
                   ",\"failed\":%" PRIu64 ",\"next_id\":%" PRIu64
                   ",\"oldest_ms\":%" PRId64 "}\n",
                   st.pending[0] + st.pending[1], st.pending[1], st.pending[0],
                   st.leased, st.failed, st.next_id, st.oldest_ms);
        else
            printf("pending %" PRIu64 " (emergency %" PRIu64 ", normal %" PRIu64
                   "), leased %" PRIu64 ", failed %" PRIu64 ", next id %" PRIu64
                   "\n",
                   st.pending[0] + st.pending[1], st.pending[1], st.pending[0],
                   st.leased, st.failed, st.next_id);
    }
    if (err)
        rc = cli_report(s, err, "queue");
out:
    bg_queue_close(q);
    free(owned);
    return cli_end(&ss, rc);
}
