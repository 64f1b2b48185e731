/*
 * test_status.c: unit tests for the /status JSON and /metrics renderers on a
 * real index (the HTTP side is covered by the integration tests).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r3d/index.h"
#include "r3d/log.h"
#include "r3d/status.h"
#include "r3d/test.h"

static const struct queue_rules rules20 = {.stable_seconds = 20, .min_slices = 20, .import = true, .wait_for_source_s = 60};
#include "r3d/util.h"

int main(void)
{
	static struct config cfg;
	char dir[] = "/tmp/r3d-test-status-XXXXXX";
	char db[256], old[256];
	struct index *idx = NULL;
	struct status_server *s = NULL;
	struct r3d_err err;
	struct queue_pass pass;

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL)
		return 1;
	config_defaults(&cfg);
	cfg.http_port = 0;   /* renderers only */
	snprintf(cfg.storage_dir, sizeof(cfg.storage_dir), "%s", dir);
	snprintf(db, sizeof(db), "%s/i.db", dir);
	CHECK(index_open(&err, db, &idx));
	for (int i = 0; i < 21; i++) {
		struct bridge_instance_attrs a;
		memset(&a, 0, sizeof(a));
		strcpy(a.study_uid, "1.2");
		strcpy(a.series_uid, "1.2.3");
		snprintf(a.sop_instance_uid, sizeof(a.sop_instance_uid), "1.2.3.%d", i);
		strcpy(a.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
		strcpy(a.modality, "CT");
		a.rows = a.columns = 512;
		a.number_of_frames = 1;
		CHECK(index_put_instance(&err, idx, &a, a.sop_instance_uid, 100, "X", 10.0, old, sizeof(old)));
	}
	CHECK(queue_scan_stable(&err, idx, 100.0, &rules20, &pass) && pass.jobs_queued == 1);
	/* Two viewer links, one already expired: one counts, no token shows. */
	const char *live = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *dead = "2222222222222222222222222222222222222222222222222222222222222222";
	char tok[INDEX_VIEWER_TOKEN_MAX];
	double exp;
	bool made;
	cfg.viewer_enabled = true;
	CHECK(index_viewer_link_ensure(&err, idx, "1.2", live, clock_wall_s(), 86400, tok, &exp, &made));
	CHECK(index_viewer_link_ensure(&err, idx, "9.9", dead, clock_wall_s() - 20 * 86400.0, 86400, tok,
				       &exp, &made));
	CHECK(status_start(&err, &cfg, idx, &s));

	char *body = status_render_json(s);
	json_error_t jerr;
	json_t *j = body ? json_loads(body, 0, &jerr) : NULL;
	CHECK(j != NULL);
	if (j != NULL) {
		CHECK(strcmp(json_string_value(json_object_get(j, "version")), R3D_VERSION) == 0);
		CHECK(json_integer_value(json_object_get(j, "studies")) == 1);
		CHECK(json_integer_value(json_object_get(j, "series")) == 1);
		CHECK(json_integer_value(json_object_get(j, "instances")) == 21);
		CHECK(json_integer_value(json_object_get(json_object_get(j, "jobs"), "queued")) == 1);
		CHECK(json_integer_value(json_object_get(j, "associations_open")) == 0);
		CHECK(json_integer_value(json_object_get(j, "storage_free_bytes")) > 0);
		CHECK(json_is_number(json_object_get(j, "uptime_s")));
		CHECK(json_is_false(json_object_get(j, "receiver_up")));
		CHECK(json_is_true(json_object_get(json_object_get(j, "viewer"), "enabled")));
		CHECK(json_integer_value(json_object_get(json_object_get(j, "viewer"), "links_active")) == 1);
		json_decref(j);
	}
	CHECK(body != NULL && strstr(body, "1111111111") == NULL && strstr(body, "2222222222") == NULL);
	free(body);

	char *m = status_render_metrics(s);
	CHECK(m != NULL && strstr(m, "\nrecon3d_instances 21\n") != NULL);
	CHECK(m != NULL && strstr(m, "\nrecon3d_jobs{state=\"queued\"} 1\n") != NULL);
	CHECK(m != NULL && strstr(m, "# TYPE recon3d_instances_received_total counter\n") != NULL);
	CHECK(m != NULL && strstr(m, "\nrecon3d_viewer_links_active 1\n") != NULL);
	/* Every sample line is name[{labels}] value, names prefixed recon3d_. */
	for (char *line = m ? strtok(m, "\n") : NULL; line != NULL; line = strtok(NULL, "\n")) {
		if (line[0] == '#')
			continue;
		CHECK(strncmp(line, "recon3d_", 8) == 0 && strchr(line, ' ') != NULL);
	}
	free(m);
	status_stop(s);
	index_close(idx);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return test_summary();
}
