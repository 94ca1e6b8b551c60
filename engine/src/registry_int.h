/*
 * The adapter registry, for the box layer: the check of a record already parsed
 * (by bg__record_parse), so that a write is parsed once.
 */
#ifndef BOXGUARD_REGISTRY_INT_H
#define BOXGUARD_REGISTRY_INT_H

#include <cjson/cJSON.h>

#include "boxguard/registry.h"

/* bg_registry_check on a document already parsed; doc may be NULL for
 * typeId 0. */
BG_MUST_CHECK bg_err bg__registry_check_doc(const bg_registry *reg,
                                            uint32_t type_id, const cJSON *doc,
                                            char *why, size_t whylen);

#endif
