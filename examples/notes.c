/*
 * A small offline notes app on boxguard: three typed records (Note,
 * Author, Tag) declared as adapters, registered, stored in an encrypted
 * box and read back. It is also the project's own adapter set: CI checks
 * its typeIds against typeids.lock with `boxguard typeids check`.
 *
 * usage: example_notes DIR
 */
#include <stdio.h>
#include <string.h>

#include "boxguard/boxguard.h"

static const bg_field note_fields[] = {
    {"title", BG_JSON_STRING, 1},
    {"body", BG_JSON_STRING, 0},
    {"author", BG_JSON_STRING, 1},
    {"tags", BG_JSON_ARRAY, 0},
};
static const bg_adapter note_adapter = {1, "Note", 1, note_fields, 4};

static const bg_field author_fields[] = {
    {"name", BG_JSON_STRING, 1},
    {"email", BG_JSON_STRING, 0},
};
static const bg_adapter author_adapter = {2, "Author", 1, author_fields, 2};

static const bg_field tag_fields[] = {{"label", BG_JSON_STRING, 1}};
static const bg_adapter tag_adapter = {3, "Tag", 1, tag_fields, 1};

static int fail(bg_store *s, bg_err err, const char *what)
{
    fprintf(stderr, "example_notes: %s: %s\n", what,
            s && bg_store_detail(s)[0] ? bg_store_detail(s) : bg_strerror(err));
    return 1;
}

static int show(void *arg, const bg_record *r)
{
    (void)arg;
    printf("%.*s (type %u): %.*s\n", (int)r->key_len, r->key, (unsigned)r->type,
           (int)r->value_len, r->value);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: example_notes DIR\n");
        return 2;
    }
    bg_registry *reg = bg_registry_new();
    if (!reg)
        return 1;
    bg_err err;
    if ((err = bg_registry_add(reg, &note_adapter)) ||
        (err = bg_registry_add(reg, &author_adapter)) ||
        (err = bg_registry_add(reg, &tag_adapter))) {
        fprintf(stderr, "example_notes: %s\n", bg_registry_detail(reg));
        bg_registry_free(reg);
        return 1;
    }
    bg_store_opts o;
    bg_store_opts_init(&o);
    o.create = 1;
    o.registry = reg;
    bg_store *s;
    bg_box *notes;
    int rc = 0;
    if ((err = bg_store_open(argv[1], &o, &s))) {
        bg_registry_free(reg);
        return fail(NULL, err, "open");
    }
    static const char author[] = "{\"name\":\"Ada\",\"email\":\"ada@example\"}";
    static const char note[] = "{\"title\":\"Offline\",\"author\":\"ada\","
                               "\"tags\":[\"sync\"]}";
    static const char bad[] = "{\"body\":\"no title\"}";
    if ((err =
             bg_box_open(s, "notes", BG_BOX_CREATE | BG_BOX_ENCRYPT, &notes)) ||
        (err =
             bg_box_put(notes, "author:ada", 10, 2, author, strlen(author))) ||
        (err = bg_box_put(notes, "note:1", 6, 1, note, strlen(note))) ||
        (err =
             bg_box_put(notes, "tag:sync", 8, 3, "{\"label\":\"sync\"}", 16))) {
        rc = fail(s, err, "write");
    } else if (bg_box_put(notes, "note:2", 6, 1, bad, strlen(bad)) !=
               BG_ESCHEMA) {
        rc = fail(s, BG_ESTATE, "a note without a title was accepted");
    } else if ((err = bg_box_iterate(notes, show, NULL))) {
        rc = fail(s, err, "read");
    }
    if ((err = bg_store_close(s)) && !rc)
        rc = fail(NULL, err, "close");
    bg_registry_free(reg);
    return rc;
}
