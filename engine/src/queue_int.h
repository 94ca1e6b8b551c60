/*
 * Internals of the queue for its tests and fuzzers.
 */
#ifndef BOXGUARD_QUEUE_INT_H
#define BOXGUARD_QUEUE_INT_H

#include "boxguard/queue.h"

/* Check the in-memory index: each lane in id order, dead entries counted.
 * Returns NULL, or a message naming the broken invariant (in a static
 * buffer). */
const char *bg__queue_check(bg_queue *q);

#endif
