/*
 * wake.h: one thread telling another that there is work, so that the daemon's
 * stages hand over at once instead of at their next poll. A topic is a
 * counter under a mutex and a condition variable, process-wide: the stage
 * that makes work calls wake_post() after committing it; the stage that does
 * it waits in wake_wait() instead of sleeping. Polling stays the fallback
 * (a wait still ends after its timeout), so a missed post costs at most one
 * poll interval, never a stuck stage.
 *
 *   WAKE_JOBS      the queue made jobs              -> workers
 *   WAKE_OUTBOX    a worker queued objects           -> sender
 *   WAKE_FINISHED  objects sent, or a job ended      -> notifier (a study may be finished)
 *   WAKE_QUEUE     the jobs API re-runs a study      -> queue thread (its stable-study pass)
 *
 * Any thread.
 */
#ifndef R3D_WAKE_H
#define R3D_WAKE_H

enum wake_topic { WAKE_JOBS, WAKE_OUTBOX, WAKE_FINISHED, WAKE_QUEUE, WAKE_NTOPICS };

/* Wakes every thread waiting on topic, and the next wait of each thread that
 * is busy now (a post is never lost between two waits). */
void wake_post(enum wake_topic topic);

/* Returns when topic is posted after *seen (then *seen is updated) or after
 * timeout_ms. *seen starts at 0; each waiting thread keeps its own. */
void wake_wait(enum wake_topic topic, unsigned long *seen, int timeout_ms);

#endif
