/*
 * meshfile.c: atomic file writing for the mesh writers (see meshfile.h).
 * Any thread.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "meshfile.h"
#include "r3d/mesh.h"

static int meshfile_code(int e)
{
	return e == ENOSPC || e == EDQUOT ? R3D_ENOSPC : R3D_EIO;
}

bool meshfile_open(struct r3d_err *err, struct meshfile *mf, const char *path)
{
	int n;

	memset(mf, 0, sizeof(*mf));
	n = snprintf(mf->path, sizeof(mf->path), "%s", path);
	if (n <= 0 || (size_t)n >= sizeof(mf->path))
		return r3d_err_set(err, R3D_EINVAL, "bad output path");
	n = snprintf(mf->tmp, sizeof(mf->tmp), "%s.tmp%ld", path, (long)getpid());
	if (n <= 0 || (size_t)n >= sizeof(mf->tmp))
		return r3d_err_set(err, R3D_EINVAL, "output path too long: %s", path);
	mf->f = fopen(mf->tmp, "wb");
	if (mf->f == NULL)
		return r3d_err_set(err, meshfile_code(errno), "cannot create %s: %s", mf->tmp,
				   strerror(errno));
	return true;
}

bool meshfile_commit(struct r3d_err *err, struct meshfile *mf)
{
	int e = 0;

	if (fflush(mf->f) != 0 || ferror(mf->f) || fsync(fileno(mf->f)) != 0)
		e = errno != 0 ? errno : EIO;
	if (fclose(mf->f) != 0 && e == 0)
		e = errno;
	mf->f = NULL;
	if (e == 0 && rename(mf->tmp, mf->path) != 0)
		e = errno;
	if (e != 0) {
		unlink(mf->tmp);
		return r3d_err_set(err, meshfile_code(e), "cannot write %s: %s", mf->path,
				   strerror(e));
	}
	return true;
}

void meshfile_abort(struct meshfile *mf)
{
	if (mf->f != NULL) {
		fclose(mf->f);
		mf->f = NULL;
		unlink(mf->tmp);
	}
}

bool meshfile_name_ok(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n >= MESH_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}
