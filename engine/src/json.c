/*
 * cJSON's hooks, forwarding to the allocator of the running store call,
 * and the parse and print that tell a failed allocation apart.
 */
#include <string.h>
#include <threads.h>

#include "alloc_int.h"
#include "json_int.h"

static _Thread_local bg__json_scope current;
static _Thread_local unsigned long failures;

static void *json_malloc(size_t n)
{
    void *p = bg__alloc_malloc(current.alloc, n);
    if (!p)
        failures++;
    return p;
}

static void json_free(void *p)
{
    bg__alloc_free(current.alloc, p);
}

static void hooks_install(void)
{
    cJSON_Hooks h = {json_malloc, json_free};
    cJSON_InitHooks(&h);
}

bg__json_scope bg__json_begin(const bg_allocator *a)
{
    static once_flag once = ONCE_FLAG_INIT;
    call_once(&once, hooks_install);
    bg__json_scope outer = current;
    current = (bg__json_scope){a, failures, outer.depth + 1};
    return outer;
}

void bg__json_end(const bg__json_scope *outer)
{
    current = *outer;
    if (!current.depth)
        current.failures = failures; /* outside every scope: a fresh start */
}

bg_err bg__json_parse(const char *txt, size_t len, cJSON **out)
{
    unsigned long before = failures;
    *out = cJSON_ParseWithLength(txt, len);
    if (*out)
        return 0;
    return failures != before ? BG_ENOMEM : BG_EINVALID;
}

int bg__json_put(cJSON *obj, const char *name, cJSON *item)
{
    if (!item)
        return -1;
    cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!old) {
        if (cJSON_AddItemToObject(obj, name, item))
            return 0;
        cJSON_Delete(item);
        return -1;
    }
    /* Replaced in place. cJSON's own replace, when it cannot copy the
     * name, leaves a member without one: the name is copied first. */
    size_t n = strlen(name) + 1;
    char *key = cJSON_malloc(n);
    if (!key) {
        cJSON_Delete(item);
        return -1;
    }
    memcpy(key, name, n);
    if (item->string && !(item->type & cJSON_StringIsConst))
        cJSON_free(item->string);
    item->string = key;
    item->type &= ~cJSON_StringIsConst;
    cJSON_ReplaceItemViaPointer(obj, old, item);
    return 0;
}

int bg__json_push(cJSON *arr, cJSON *item)
{
    if (!item)
        return -1;
    if (cJSON_AddItemToArray(arr, item))
        return 0;
    cJSON_Delete(item);
    return -1;
}

int bg__json_failed(void)
{
    return current.depth && failures != current.failures;
}

char *bg__json_print(const cJSON *doc)
{
    if (bg__json_failed())
        return NULL;
    return cJSON_PrintUnformatted(doc);
}

const char *bg__json_str(const cJSON *doc, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(doc, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}
