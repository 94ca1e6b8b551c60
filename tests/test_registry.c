/*
 * Adapter registry and schema lock: collisions naming both adapters, bad
 * declarations, manifests, record checks, and a store that refuses a
 * registry contradicting its schema lock.
 */
#include "testutil.h"

static const bg_field user_fields[] = {
    {"id", BG_JSON_INTEGER, 1},
    {"email", BG_JSON_STRING, 0},
    {"tags", BG_JSON_ARRAY, 0},
};
static const bg_adapter user = {3, "User", 1, user_fields, 3};
static const bg_adapter note = {4, "Note", 2, NULL, 0};

static void test_collisions_name_both(void)
{
    bg_registry *r = bg_registry_new();
    CHECK_OK(bg_registry_add(r, &user));
    bg_adapter account = {3, "Account", 1, NULL, 0};
    CHECK_ERR(bg_registry_add(r, &account), BG_ECOLLISION);
    CHECK_CONTAINS(bg_registry_detail(r),
                   "typeId 3 is taken by adapter 'User' (version 1); cannot "
                   "register 'Account'");
    bg_adapter moved = {9, "User", 1, NULL, 0};
    CHECK_ERR(bg_registry_add(r, &moved), BG_ECOLLISION);
    CHECK_CONTAINS(bg_registry_detail(r), "'User' is taken by typeId 3");
    CHECK_INT(bg_registry_count(r), ==, 1);
    bg_registry_free(r);
}

static void test_bad_declarations(void)
{
    bg_registry *r = bg_registry_new();
    bg_adapter zero = {0, "Zero", 1, NULL, 0};
    CHECK_ERR(bg_registry_add(r, &zero), BG_EINVALID);
    CHECK_CONTAINS(bg_registry_detail(r), "typeId 0 is built in");
    bg_adapter badname = {5, "a b", 1, NULL, 0};
    CHECK_ERR(bg_registry_add(r, &badname), BG_EINVALID);
    bg_adapter v0 = {5, "V", 0, NULL, 0};
    CHECK_ERR(bg_registry_add(r, &v0), BG_EINVALID);
    bg_field twice[] = {{"a", BG_JSON_ANY, 0}, {"a", BG_JSON_BOOL, 1}};
    bg_adapter dup = {5, "Dup", 1, twice, 2};
    CHECK_ERR(bg_registry_add(r, &dup), BG_EINVALID);
    CHECK_CONTAINS(bg_registry_detail(r), "field 'a' declared twice");
    CHECK_INT(bg_registry_count(r), ==, 0);
    bg_registry_free(r);
}

static void test_manifest_round_trip_and_errors(void)
{
    bg_registry *r = bg_registry_new();
    CHECK_OK(bg_registry_add(r, &note));
    CHECK_OK(bg_registry_add(r, &user));
    char *json = bg_registry_to_json(r);
    CHECK(json);
    bg_registry *r2 = bg_registry_new();
    CHECK_OK(bg_registry_add_json(r2, json, strlen(json)));
    char *json2 = bg_registry_to_json(r2);
    CHECK_STR(json, json2);
    CHECK_INT(bg_registry_at(r2, 0)->type_id, ==, 3); /* typeId order */
    CHECK_INT(bg_registry_find(r2, 3)->fields[0].required, ==, 1);
    free(json);
    free(json2);

    const char *bad[] = {
        "[",
        "[]",
        "{\"adapters\":{}}",
        "{\"adapters\":[{\"name\":\"X\"}]}",
        "{\"adapters\":[{\"typeId\":-1,\"name\":\"X\"}]}",
        "{\"adapters\":[{\"typeId\":1.5,\"name\":\"X\"}]}",
        ("{\"adapters\":[{\"typeId\":1,\"name\":\"X\",\"fields\":[{\"name\":"
         "\"f\",\"type\":\"date\"}]}]}"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_ERR(bg_registry_add_json(r2, bad[i], strlen(bad[i])),
                  BG_EINVALID);
        CHECK(bg_registry_detail(r2)[0]);
    }
    /* All or nothing: the second entry collides, the first is not kept. */
    const char *half = "{\"adapters\":[{\"typeId\":8,\"name\":\"New\"},"
                       "{\"typeId\":3,\"name\":\"Other\"}]}";
    CHECK_ERR(bg_registry_add_json(r2, half, strlen(half)), BG_ECOLLISION);
    CHECK(bg_registry_find(r2, 8) == NULL);
    CHECK_INT(bg_registry_count(r2), ==, 2);
    bg_registry_free(r);
    bg_registry_free(r2);
}

static bg_err chk(bg_registry *r, uint32_t t, const char *json, char *why)
{
    return bg_registry_check(r, t, json, strlen(json), why, 200);
}

/* Every field type against every JSON kind, the field limits, bad field
 * declarations, and a value that is not JSON. */
static void test_field_types_and_limits(void)
{
    static const char *const values[] = {"null",  "true", "1.5", "7",
                                         "\"s\"", "[1]",  "{}"};
    /* What each type takes, by the index of values above. */
    static const char *const takes[] = {
        "1111111", /* any */
        "1000000", /* null */
        "0100000", /* bool */
        "0011000", /* number */
        "0001000", /* integer */
        "0000100", /* string */
        "0000010", /* array */
        "0000001", /* object */
    };
    for (int t = BG_JSON_ANY; t <= BG_JSON_OBJECT; t++) {
        bg_field f = {"f", (bg_json_type)t, 1};
        bg_adapter a = {5, "T", 1, &f, 1};
        bg_registry *r = bg_registry_new();
        CHECK_OK(bg_registry_add(r, &a));
        for (int v = 0; v < 7; v++) {
            char doc[32], why[160];
            snprintf(doc, sizeof doc, "{\"f\":%s}", values[v]);
            bg_err err =
                bg_registry_check(r, 5, doc, strlen(doc), why, sizeof why);
            if ((err == 0) != (takes[t][v] == '1'))
                fprintf(stderr, "type %d, value %s: %s\n", t, values[v],
                        bg_err_name(err));
            CHECK_INT(err == 0, ==, takes[t][v] == '1');
        }
        char why[160];
        CHECK_ERR(bg_registry_check(r, 5, "{\"f\":", 5, why, sizeof why),
                  BG_EINVALID);
        CHECK_CONTAINS(why, "not valid JSON");
        bg_registry_free(r);
    }
    bg_registry *r = bg_registry_new();
    bg_field many[BG_TYPE_FIELDS_MAX + 1];
    char names[BG_TYPE_FIELDS_MAX + 1][8];
    for (int i = 0; i <= BG_TYPE_FIELDS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "f%d", i);
        many[i] = (bg_field){names[i], BG_JSON_ANY, 0};
    }
    bg_adapter at_max = {6, "Max", 1, many, BG_TYPE_FIELDS_MAX};
    CHECK_OK(bg_registry_add(r, &at_max));
    bg_adapter over = {7, "Over", 1, many, BG_TYPE_FIELDS_MAX + 1};
    CHECK_ERR(bg_registry_add(r, &over), BG_EINVALID);
    CHECK_CONTAINS(bg_registry_detail(r), "more than");
    bg_field badname = {"", BG_JSON_ANY, 0};
    bg_adapter bn = {8, "BadField", 1, &badname, 1};
    CHECK_ERR(bg_registry_add(r, &bn), BG_EINVALID);
    CHECK_CONTAINS(bg_registry_detail(r), "has a bad name");
    bg_field badtype = {"t", (bg_json_type)99, 0};
    bg_adapter bt = {8, "BadType", 1, &badtype, 1};
    CHECK_ERR(bg_registry_add(r, &bt), BG_EINVALID);
    CHECK_CONTAINS(bg_registry_detail(r), "bad type");
    CHECK_INT(bg_registry_count(r), ==, 1);
    bg_registry_free(r);
}

static void test_record_checks(void)
{
    bg_registry *r = bg_registry_new();
    CHECK_OK(bg_registry_add(r, &user));
    CHECK_OK(bg_registry_add(r, &note));
    char why[200];
    CHECK_OK(chk(r, 0, "[1]", why));
    CHECK_OK(chk(r, 3, "{\"id\":1,\"extra\":true}", why));
    CHECK_OK(chk(r, 3, "{\"id\":1,\"email\":\"a@b\",\"tags\":[]}", why));
    CHECK_OK(chk(r, 4, "\"notes take anything\"", why));
    CHECK_ERR(chk(r, 3, "{\"email\":\"a@b\"}", why), BG_ESCHEMA);
    CHECK_CONTAINS(why, "field 'id' is required by 'User' (typeId 3)");
    CHECK_ERR(chk(r, 3, "{\"id\":1.5}", why), BG_ESCHEMA);
    CHECK_CONTAINS(why, "field 'id' must be integer for 'User' (typeId 3), "
                        "not number");
    CHECK_ERR(chk(r, 3, "{\"id\":1,\"tags\":{}}", why), BG_ESCHEMA);
    CHECK_CONTAINS(why, "field 'tags' must be array");
    CHECK_ERR(chk(r, 3, "[1]", why), BG_ESCHEMA);
    CHECK_CONTAINS(why, "must be an object, not array");
    CHECK_ERR(chk(r, 77, "{}", why), BG_ESCHEMA);
    CHECK_CONTAINS(why, "typeId 77 has no adapter");
    bg_registry_free(r);
}

static bg_err open_with(bg_sim *sim, const bg_registry *r, int accept,
                        bg_store **s, char *detail)
{
    bg_store_opts o = tu_opts(sim, BG_DURABILITY_FULL);
    o.registry = r;
    o.accept_schema = accept;
    o.detail = detail;
    o.detail_len = 300;
    return bg_store_open("s", &o, s);
}

static void test_schema_lock(void)
{
    bg_sim *sim = bg_sim_new(1);
    bg_registry *r = bg_registry_new();
    CHECK_OK(bg_registry_add(r, &user));
    CHECK_OK(bg_registry_add(r, &note));
    bg_store *s;
    bg_box *b;
    char detail[300];
    CHECK_OK(open_with(sim, r, 0, &s, detail));
    CHECK_OK(bg_box_open(s, "b", BG_BOX_CREATE, &b));
    CHECK_OK(bg_box_put(b, "u", 1, 3, "{\"id\":7}", 8));
    CHECK_OK(bg_box_put(b, "n", 1, 4, "1", 1));
    CHECK_ERR(bg_box_put(b, "x", 1, 3, "{}", 2), BG_ESCHEMA);
    CHECK_CONTAINS(bg_store_detail(s),
                   "box 'b', key 'x': field 'id' is required");
    CHECK_ERR(bg_box_put(b, "x", 1, 9, "{}", 2), BG_ESCHEMA);
    CHECK_OK(bg_store_close(s));

    /* No registry: the lock's adapters apply. */
    CHECK_OK(open_with(sim, NULL, 0, &s, detail));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    CHECK(tu_has(b, "u", "{\"id\":7}"));
    CHECK_ERR(bg_box_put(b, "x", 1, 3, "{}", 2), BG_ESCHEMA);
    CHECK_OK(bg_store_close(s));

    /* An adapter the store knows is gone: refused, and nothing changes. */
    bg_registry *only_user = bg_registry_new();
    CHECK_OK(bg_registry_add(only_user, &user));
    uint8_t *before, *after;
    size_t blen, alen;
    CHECK_OK(bg_sim_read_file(sim, "s/meta.box", &before, &blen));
    CHECK_ERR(open_with(sim, only_user, 0, &s, detail), BG_ESCHEMA);
    CHECK_CONTAINS(detail, "adapter 'Note' (typeId 4) is in the store's "
                           "schema lock but is not registered");
    /* A typeId under another name. */
    bg_registry *renamed = bg_registry_new();
    bg_adapter acct = {3, "Account", 1, NULL, 0};
    CHECK_OK(bg_registry_add(renamed, &acct));
    CHECK_OK(bg_registry_add(renamed, &note));
    CHECK_ERR(open_with(sim, renamed, 0, &s, detail), BG_ESCHEMA);
    CHECK_CONTAINS(detail, "typeId 3 is registered as 'Account' but the "
                           "store knows it as 'User'");
    /* A name moved to another typeId. */
    bg_registry *moved = bg_registry_new();
    bg_adapter user9 = {9, "User", 1, NULL, 0};
    CHECK_OK(bg_registry_add(moved, &user9));
    CHECK_OK(bg_registry_add(moved, &note));
    CHECK_ERR(open_with(sim, moved, 0, &s, detail), BG_ESCHEMA);
    /* One move, named as one (it was counted twice: gone from 3, and on
     * 9). */
    CHECK_CONTAINS(detail, "adapter 'User' moved from typeId 3 to typeId 9");
    CHECK_CONTAINS(detail, "1 finding against");
    CHECK_OK(bg_sim_read_file(sim, "s/meta.box", &after, &alen));
    CHECK(blen == alen && !memcmp(before, after, blen));
    free(before);
    free(after);

    /* Accepted explicitly: the lock changes, and a record of the dropped
     * type is refused on read, naming box, key and typeId. */
    CHECK_OK(open_with(sim, only_user, 1, &s, detail));
    CHECK_OK(bg_box_open(s, "b", 0, &b));
    uint32_t t;
    char *v;
    size_t n;
    CHECK_ERR(bg_box_get(b, "n", 1, &t, &v, &n), BG_ESCHEMA);
    CHECK_CONTAINS(bg_store_detail(s), "box 'b', key 'n': typeId 4 has no "
                                       "adapter");
    CHECK_OK(bg_store_close(s));
    CHECK_OK(open_with(sim, only_user, 0, &s, detail));
    CHECK_OK(bg_store_close(s));

    bg_registry_free(r);
    bg_registry_free(only_user);
    bg_registry_free(renamed);
    bg_registry_free(moved);
    bg_sim_free(sim);
}

int main(void)
{
    RUN(test_collisions_name_both);
    RUN(test_bad_declarations);
    RUN(test_manifest_round_trip_and_errors);
    RUN(test_field_types_and_limits);
    RUN(test_record_checks);
    RUN(test_schema_lock);
    return CHECK_DONE();
}
