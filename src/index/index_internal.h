/*
 * index_internal.h: what index.c and queue.c share: the connection, its
 * lock and the prepared statements. Not for other modules.
 */
#ifndef R3D_INDEX_INTERNAL_H
#define R3D_INDEX_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "r3d/index.h"

enum index_stmt {
	STMT_STUDY_FIND,
	STMT_STUDY_INSERT,
	STMT_STUDY_TOUCH,
	STMT_SERIES_FIND,
	STMT_SERIES_INSERT,
	STMT_SERIES_TOUCH,
	STMT_SERIES_CALLED,
	STMT_INSTANCE_FIND,
	STMT_INSTANCE_UPSERT,
	STMT_COUNT
};

struct index {
	pthread_mutex_t lock;   /* held for every use of db */
	sqlite3 *db;
	sqlite3_stmt *stmt[STMT_COUNT];
};

/* Fills err from the connection's last error; returns false. Lock held. */
bool index_sql_fail(struct r3d_err *err, struct index *idx, const char *what);
/* Runs SQL without results. err may be NULL. Lock held. */
bool index_exec(struct r3d_err *err, struct index *idx, const char *sql);

#endif
