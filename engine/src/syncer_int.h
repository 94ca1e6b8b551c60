/*
 * The store's sync thread (syncer.c): GROUP mode's group syncs, run while
 * the writer gathers the next group.
 */
#ifndef BOXGUARD_SYNCER_INT_H
#define BOXGUARD_SYNCER_INT_H

#include "handle_int.h"

/* The sync thread of GROUP mode. bg__syncer_start starts it
 * (BG_ENOMEM when it cannot); bg__syncer_stop waits for the sync in flight
 * and ends it (a store without one: nothing). */
BG_MUST_CHECK bg_err bg__syncer_start(bg_store *s);
void bg__syncer_stop(bg_store *s);
/* Hand f's sync to the thread and return: the caller has waited for the
 * one before (bg__sync_wait) and writes no box file of the store until it
 * waits for this one, so the disk sees the boxes' writes and syncs in the
 * order it would without a thread. owner names who is waiting for it.
 * Without a thread f is synced now and the vfs's answer returned. */
BG_MUST_CHECK bg_err bg__sync_begin(bg_store *s, bg_file *f, void *owner);
/* Wait for the sync in flight, if any: its result, and *owner (NULL when
 * there was none). */
BG_MUST_CHECK bg_err bg__sync_wait(bg_store *s, void **owner);
/* Who handed over the sync in flight, or NULL. */
const void *bg__sync_owner(const bg_store *s);

#endif
