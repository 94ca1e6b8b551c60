/*
 * boxguard backup create|verify|restore|list: encrypted backups of a
 * store (backup.h). The key comes from a file, never the command line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cli_backup_usage[] =
    "usage:\n"
    "  boxguard backup create  --store DIR --out FILE KEY [--salvage] "
    "[--json]\n"
    "  boxguard backup verify  --in FILE KEY [--json]\n"
    "  boxguard backup restore --store DIR --in FILE KEY [--expect-schema N]\n"
    "                          [--schema-version N] [--json]\n"
    "  boxguard backup list    --in FILE KEY [--json]\n"
    "KEY: --passphrase-file F (Argon2id) or --key-file F (32 raw bytes);\n"
    "one of them, never the secret itself on the command line.\n"
    "\n"
    "A backup is every box of the store as `dump` lines in a tar archive,\n"
    "with backup_meta.json (schema version, each box's record count,\n"
    "whether it was sealed, the SHA-256 of its dump), compressed with zstd\n"
    "and encrypted with XChaCha20-Poly1305 in 64 KiB chunks, the last one\n"
    "marked final; see the README for the layout.\n"
    "  create   a consistent snapshot (the store is held while it runs),\n"
    "           written to FILE.tmp, synced, renamed: never a half FILE. A\n"
    "           damaged store is refused (exit 4) unless --salvage, which\n"
    "           keeps every record that verifies and lists what was lost.\n"
    "  verify   authenticate every chunk, the manifest and every dump's\n"
    "           hash and count; writes nothing.\n"
    "  restore  verify, build the restored store beside DIR (sealed boxes\n"
    "           sealed again under DIR's key, or a new key for a new store),\n"
    "           check every count, then swap\n"
    "           it in atomically; the old store is removed once the swap is\n"
    "           durable. DIR may not exist yet. Any failure leaves DIR as\n"
    "           it was; a crash leaves the old store or the restored one.\n"
    "           --expect-schema N: refuse a backup at another schema version.\n"
    "           --schema-version N: the app's; refuse a newer backup.\n"
    "  list     what the backup holds (it is verified too)\n"
    "\n"
    "exit codes: 0 success; 1 FILE or DIR not found; 2 bad usage, or a\n"
    "schema version refused; 3 wrong passphrase or key (said before any\n"
    "other output), I/O error; 4 a damaged, truncated or spliced backup\n"
    "(the chunk or member named), or a damaged store.\n";

/* The secret of --passphrase-file or --key-file, into k (owned: *buf). */
static int load_key(const char *pass_file, const char *key_file,
                    bg_backup_key *k, char **buf)
{
    if (!pass_file == !key_file) {
        cli_fail("backup: give one of --passphrase-file F and --key-file F");
        return EXIT_USAGE;
    }
    size_t len;
    const char *f = pass_file ? pass_file : key_file;
    *buf = cli_slurp(f, &len);
    if (!*buf) {
        cli_fail("cannot read the %s '%s': %s",
                 pass_file ? "passphrase file" : "key file", f,
                 strerror(errno));
        return errno == ENOENT ? EXIT_NEGATIVE : EXIT_SYSTEM;
    }
    memset(k, 0, sizeof *k);
    if (pass_file) {
        while (len && ((*buf)[len - 1] == '\n' || (*buf)[len - 1] == '\r'))
            len--;
        if (!len) {
            cli_fail("the passphrase file '%s' is empty", f);
            return EXIT_USAGE;
        }
        k->kdf = BG_BACKUP_PASSPHRASE;
    } else if (len != BG_BACKUP_KEY_BYTES) {
        cli_fail("the key file '%s' holds %zu bytes; a key is %d raw bytes", f,
                 len, BG_BACKUP_KEY_BYTES);
        return EXIT_USAGE;
    } else {
        k->kdf = BG_BACKUP_RAW_KEY;
    }
    k->secret = (const uint8_t *)*buf;
    k->len = len;
    return EXIT_OK;
}

static void wipe_key(char *buf, const bg_backup_key *k)
{
    if (buf) {
        sodium_memzero(buf, k->len);
        free(buf);
    }
}

static cJSON *info_json(const bg_backup_info *in)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format", in->format);
    cJSON_AddNumberToObject(o, "schema_version", in->schema_version);
    cJSON_AddNumberToObject(o, "created_at", (double)in->created_at);
    cJSON_AddStringToObject(o, "boxguard_version", in->version);
    cJSON_AddNumberToObject(o, "records", (double)in->records);
    cJSON_AddNumberToObject(o, "chunks", (double)in->chunks);
    cJSON_AddNumberToObject(o, "bytes", (double)in->file_bytes);
    cJSON *bs = cJSON_AddArrayToObject(o, "boxes");
    for (size_t i = 0; i < in->nboxes && i < BG_BACKUP_BOXES_MAX; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", in->boxes[i].name);
        cJSON_AddNumberToObject(b, "records", (double)in->boxes[i].records);
        cJSON_AddBoolToObject(b, "sealed", in->boxes[i].sealed);
        cJSON_AddStringToObject(b, "sha256", in->boxes[i].sha256);
        cJSON_AddItemToArray(bs, b);
    }
    return o;
}

static void print_info(const char *what, const char *file,
                       const bg_backup_info *in, int boxes)
{
    printf("%s %s: %zu boxes, %" PRIu64 " records, schema version %u, "
           "%" PRIu64 " chunks, %" PRIu64 " bytes\n",
           what, file, in->nboxes, in->records, (unsigned)in->schema_version,
           in->chunks, in->file_bytes);
    for (size_t i = 0; boxes && i < in->nboxes && i < BG_BACKUP_BOXES_MAX; i++)
        printf("  %-24s %10" PRIu64 " records%s  sha256 %s\n",
               in->boxes[i].name, in->boxes[i].records,
               in->boxes[i].sealed ? "  sealed" : "", in->boxes[i].sha256);
}

int cli_cmd_backup(int argc, char **argv)
{
    if (argc < 3 || argv[2][0] == '-') {
        fputs(cli_backup_usage, stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[2], *store = NULL, *out = NULL, *in = NULL,
               *pass = NULL, *keyf = NULL, *expect = NULL, *code = NULL;
    int as_json = 0, salvage = 0;
    const opt opts[] = {{"--store", &store, NULL},
                        {"--out", &out, NULL},
                        {"--in", &in, NULL},
                        {"--passphrase-file", &pass, NULL},
                        {"--key-file", &keyf, NULL},
                        {"--expect-schema", &expect, NULL},
                        {"--schema-version", &code, NULL},
                        {"--salvage", NULL, &salvage},
                        {"--json", NULL, &as_json},
                        {NULL, NULL, NULL}};
    int create = !strcmp(sub, "create"), verify = !strcmp(sub, "verify"),
        restore = !strcmp(sub, "restore"), list = !strcmp(sub, "list");
    if (!create && !verify && !restore && !list) {
        cli_fail("backup: unknown subcommand '%s' (see boxguard backup --help)",
                 sub);
        return EXIT_USAGE;
    }
    if (cli_parse_opts(argc, argv, 3, opts, "backup", NULL, NULL))
        return EXIT_USAGE;
    const char *need = create && !store    ? "--store DIR"
                       : create && !out    ? "--out FILE"
                       : restore && !store ? "--store DIR"
                       : !create && !in    ? "--in FILE"
                                           : NULL;
    if (need) {
        cli_fail("backup %s needs %s (see boxguard backup --help)", sub, need);
        return EXIT_USAGE;
    }
    if ((create && in) || (!create && out) || (!create && salvage) ||
        (!restore && (expect || code)) || ((verify || list) && store)) {
        cli_fail("backup %s: an option of another subcommand (see boxguard "
                 "backup --help)",
                 sub);
        return EXIT_USAGE;
    }
    unsigned long long want = 0;
    if (expect && cli_parse_number(expect, 1, UINT32_MAX, &want)) {
        cli_fail("--expect-schema must be a version from 1, not '%s'", expect);
        return EXIT_USAGE;
    }
    unsigned long long app = 0;
    if (code && cli_parse_number(code, 1, UINT32_MAX, &app)) {
        cli_fail("--schema-version must be a version from 1, not '%s'", code);
        return EXIT_USAGE;
    }
    bg_backup_key k = {0};
    char *secret = NULL;
    int rc = load_key(pass, keyf, &k, &secret);
    if (rc) {
        wipe_key(secret, &k);
        return rc;
    }
    bg_backup_info info;
    char detail[512] = "";
    bg_err err = 0;
    if (create) {
        args a;
        memset(&a, 0, sizeof a);
        a.cmd = "backup";
        a.store = store;
        a.accept_schema = 1;
        session ss;
        rc = cli_begin(&a, 1, NULL, 0, &ss);
        if (!rc) {
            err = bg_backup_create(ss.s, out, &k, salvage, &info);
            if (err)
                rc = cli_report(ss.s, err, "backup create");
        }
        rc = cli_end(&ss, rc);
    } else if (restore) {
        bg_restore_opts ro = {
            NULL, {NULL, NULL}, (uint32_t)want, (uint32_t)app};
        err =
            bg_backup_restore(store, in, &k, &ro, &info, detail, sizeof detail);
    } else {
        err = bg_backup_read(in, NULL, &k, NULL, NULL, &info, detail,
                             sizeof detail);
    }
    wipe_key(secret, &k);
    if (!create && err) {
        cli_fail("%s", detail[0] ? detail : bg_strerror(err));
        return cli_exit_for(err);
    }
    if (rc)
        return rc;
    if (as_json) {
        cJSON *o = info_json(&info);
        cJSON_AddStringToObject(o, "file", create ? out : in);
        if (restore)
            cJSON_AddStringToObject(o, "restored_into", store);
        if (create && salvage)
            cJSON_AddNumberToObject(o, "lost_bytes", (double)info.lost_bytes);
        cli_print_json(o);
    } else if (create) {
        print_info("backed up to", out, &info, 0);
        if (info.lost_bytes)
            printf("  salvaged: %" PRIu64 " damaged bytes were not backed up "
                   "(listed in the manifest)\n",
                   info.lost_bytes);
    } else if (restore) {
        print_info("restored into", store, &info, 0);
        printf("  restored %" PRIu64 " records in %zu boxes from %s\n",
               info.records, info.nboxes, in);
    } else {
        print_info(verify ? "sound:" : "backup", in, &info, list);
    }
    return EXIT_OK;
}
