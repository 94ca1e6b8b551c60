/*
 * The store's sync thread: in GROUP mode a group's fdatasync runs here
 * while the writer gathers the next group in memory. One sync is in flight
 * at a time; the writer waits for it before it writes to any box file
 * again (syncer_int.h), so the order of writes and syncs on the disk is
 * the same as with the sync in the writer's own thread. It calls the
 * handle alone.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <string.h>

#include "syncer_int.h"

struct bg__syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const bg_vfs *vfs;
    bg_file *f;  /* the file to sync; NULL when none was handed over */
    int busy;    /* f handed over and its sync not finished */
    int stop;    /* the thread is to exit */
    bg_err err;  /* the finished sync's result */
    void *owner; /* who handed f over (read and written by the writer) */
};

static void *run(void *arg)
{
    bg__syncer *y = arg;
    pthread_mutex_lock(&y->mu);
    for (;;) {
        while (!y->stop && !(y->busy && y->f))
            pthread_cond_wait(&y->cv, &y->mu);
        if (y->stop)
            break;
        bg_file *f = y->f;
        pthread_mutex_unlock(&y->mu);
        bg_err err = bg__vfs_sync_unowned(y->vfs, f);
        pthread_mutex_lock(&y->mu);
        y->err = err;
        y->f = NULL;
        y->busy = 0;
        pthread_cond_broadcast(&y->cv);
    }
    pthread_mutex_unlock(&y->mu);
    return NULL;
}

bg_err bg__syncer_start(bg_store *s)
{
    bg__syncer *y = bg__handle_malloc(s, sizeof *y);
    if (!y)
        return BG_ENOMEM;
    memset(y, 0, sizeof *y);
    y->vfs = s->vfs;
    if (pthread_mutex_init(&y->mu, NULL)) {
        bg__handle_free(s, y);
        return BG_ENOMEM;
    }
    if (pthread_cond_init(&y->cv, NULL)) {
        pthread_mutex_destroy(&y->mu);
        bg__handle_free(s, y);
        return BG_ENOMEM;
    }
    if (pthread_create(&y->thread, NULL, run, y)) {
        pthread_cond_destroy(&y->cv);
        pthread_mutex_destroy(&y->mu);
        bg__handle_free(s, y);
        return bg__handle_fail(s, BG_ENOMEM, "cannot start the sync thread");
    }
    s->syncer = y;
    return 0;
}

void bg__syncer_stop(bg_store *s)
{
    bg__syncer *y = s->syncer;
    if (!y)
        return;
    pthread_mutex_lock(&y->mu);
    while (y->busy)
        pthread_cond_wait(&y->cv, &y->mu);
    y->stop = 1;
    pthread_cond_broadcast(&y->cv);
    pthread_mutex_unlock(&y->mu);
    pthread_join(y->thread, NULL);
    pthread_cond_destroy(&y->cv);
    pthread_mutex_destroy(&y->mu);
    bg__handle_free(s, y);
    s->syncer = NULL;
}

bg_err bg__sync_begin(bg_store *s, bg_file *f, void *owner)
{
    bg__syncer *y = s->syncer;
    if (!y)
        return bg__vfs_sync(s, f);
    s->vfs_ops++;
    pthread_mutex_lock(&y->mu);
    y->f = f;
    y->busy = 1;
    y->err = 0;
    pthread_cond_broadcast(&y->cv);
    pthread_mutex_unlock(&y->mu);
    y->owner = owner;
    return 0;
}

bg_err bg__sync_wait(bg_store *s, void **owner)
{
    bg__syncer *y = s->syncer;
    *owner = NULL;
    if (!y || !y->owner)
        return 0;
    pthread_mutex_lock(&y->mu);
    while (y->busy)
        pthread_cond_wait(&y->cv, &y->mu);
    bg_err err = y->err;
    pthread_mutex_unlock(&y->mu);
    *owner = y->owner;
    y->owner = NULL;
    return err;
}

const void *bg__sync_owner(const bg_store *s)
{
    return s->syncer ? s->syncer->owner : NULL;
}
