/*
 * test_viewer_unit.c: the 3D page's tokens and link addresses: 64 hex
 * digits from the random generator, never twice the same; what counts as a
 * token; links under [viewer] base_url, or the HTTP server's own address
 * (IPv6 in brackets) when it is empty; a base_url too long is refused.
 */
#include <stdio.h>
#include <string.h>

#include "r3d/config.h"
#include "r3d/test.h"
#include "r3d/viewer.h"

#define NTOKENS 64

int main(void)
{
	static struct config cfg;
	static char tokens[NTOKENS][VIEWER_TOKEN_LEN + 1];
	char url[VIEWER_URL_MAX], small[40];
	struct r3d_err err;
	int bits[16] = {0};

	for (int i = 0; i < NTOKENS; i++) {
		CHECK(viewer_token_new(&err, tokens[i]));
		CHECK(strlen(tokens[i]) == VIEWER_TOKEN_LEN && viewer_token_valid(tokens[i]));
		for (int k = 0; k < i; k++)
			CHECK(strcmp(tokens[i], tokens[k]) != 0);
		for (int c = 0; c < VIEWER_TOKEN_LEN; c++) {
			char ch = tokens[i][c];
			bits[ch <= '9' ? ch - '0' : ch - 'a' + 10]++;
		}
	}
	/* Every hex digit turns up (64 tokens x 64 digits: 256 expected each). */
	for (int d = 0; d < 16; d++)
		CHECK(bits[d] > 150 && bits[d] < 370);
	CHECK(!viewer_token_valid(""));
	CHECK(!viewer_token_valid("abc"));
	char t[VIEWER_TOKEN_LEN + 2];
	memcpy(t, tokens[0], VIEWER_TOKEN_LEN + 1);
	t[5] = 'A';
	CHECK(!viewer_token_valid(t));
	t[5] = 'g';
	CHECK(!viewer_token_valid(t));
	memcpy(t, tokens[0], VIEWER_TOKEN_LEN);
	t[VIEWER_TOKEN_LEN] = '0';
	t[VIEWER_TOKEN_LEN + 1] = '\0';
	CHECK(!viewer_token_valid(t));

	config_defaults(&cfg);
	snprintf(cfg.http_bind, sizeof(cfg.http_bind), "127.0.0.1");
	cfg.http_port = 8480;
	CHECK(viewer_link_url(&err, &cfg, "ab12", url, sizeof(url)));
	CHECK(strcmp(url, "http://127.0.0.1:8480/viewer/ab12") == 0);
	snprintf(cfg.http_bind, sizeof(cfg.http_bind), "::1");
	CHECK(viewer_link_url(&err, &cfg, "ab12", url, sizeof(url)));
	CHECK(strcmp(url, "http://[::1]:8480/viewer/ab12") == 0);
	snprintf(cfg.viewer_base_url, sizeof(cfg.viewer_base_url), "https://r3d.example.org/sub");
	CHECK(viewer_link_url(&err, &cfg, "ab12", url, sizeof(url)));
	CHECK(strcmp(url, "https://r3d.example.org/sub/viewer/ab12") == 0);
	CHECK(!viewer_link_url(&err, &cfg, tokens[0], small, sizeof(small)) && err.code == R3D_EINVAL);
	return test_summary();
}
