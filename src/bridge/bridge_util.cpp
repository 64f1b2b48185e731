/*
 * bridge_util.cpp: helpers shared by the bridge's object writers (see
 * bridge_util.h). Any thread.
 */
#include "bridge_util.h"

#include "dcmtk/dcmdata/dcdeftag.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace r3d_bridge_util {

bool text_ok(const char *s, size_t max)
{
	size_t n = s != nullptr ? strlen(s) : 0;

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		if (c < 0x20 || c == 0x7f || c == '\\')
			return false;
	}
	return true;
}

bool digits_ok(const char *s, size_t min, size_t max, bool dot)
{
	size_t n = strlen(s);

	if (n < min || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (dot && s[i] == '.' && i >= 6)))
			return false;
	return true;
}

bool code_ok(const struct bridge_code *c)
{
	return c != nullptr && text_ok(c->value, 64) && text_ok(c->scheme, 16) &&
	       text_ok(c->meaning, BRIDGE_LO_MAX);
}

bool code_present(const struct bridge_code *c)
{
	return c->value != nullptr && c->value[0] != '\0';
}

bool codes_ok(const struct bridge_segment_codes *c)
{
	const struct bridge_code *opt[] = {&c->type_modifier, &c->region, &c->region_modifier};

	if (!code_ok(&c->category) || !code_ok(&c->type))
		return false;
	for (const struct bridge_code *o : opt)
		if (code_present(o) && !code_ok(o))
			return false;
	return !code_present(&c->region_modifier) || code_present(&c->region);
}

std::string host_serial()
{
	char host[256];

	if (gethostname(host, sizeof(host)) != 0)
		return "unknown";
	host[sizeof(host) - 1] = '\0';
	std::string s(host);
	if (s.empty())
		return "unknown";
	if (s.size() > BRIDGE_LO_MAX)
		s.resize(BRIDGE_LO_MAX);
	for (char &c : s)
		if (static_cast<unsigned char>(c) < 0x20 || c == '\\')
			c = '_';
	return s;
}

bool save_atomic(struct r3d_err *err, DcmFileFormat &ff, const char *path, E_EncodingType enc)
{
	std::string tmp = std::string(path) + ".tmp.XXXXXX";
	std::vector<char> name(tmp.begin(), tmp.end());
	OFCondition cond;
	int fd, e;

	name.push_back('\0');
	fd = mkstemp(name.data());
	if (fd < 0) {
		e = errno;
		return r3d_err_set(err, e == ENOSPC ? R3D_ENOSPC : R3D_EIO,
				   "cannot create a temporary file next to '%s': %s", path, strerror(e));
	}
	fchmod(fd, 0640);
	close(fd);
	cond = ff.saveFile(name.data(), EXS_LittleEndianExplicit, enc,
			   EGL_recalcGL, EPD_noChange);
	if (cond.bad()) {
		e = errno;
		unlink(name.data());
		return r3d_err_set(err, e == ENOSPC ? R3D_ENOSPC : R3D_EIO, "cannot write '%s': %s",
				   name.data(), cond.text());
	}
	fd = open(name.data(), O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		e = errno;
		if (fd >= 0)
			close(fd);
		unlink(name.data());
		return r3d_err_set(err, e == ENOSPC ? R3D_ENOSPC : R3D_EIO, "cannot sync '%s': %s",
				   name.data(), strerror(e));
	}
	close(fd);
	if (rename(name.data(), path) != 0) {
		e = errno;
		unlink(name.data());
		return r3d_err_set(err, R3D_EIO, "cannot rename to '%s': %s", path, strerror(e));
	}
	return true;
}

bool identity_check(struct r3d_err *err, const struct bridge_export_info *info)
{
	if (info == nullptr || info->source_path == nullptr)
		return r3d_err_set(err, R3D_EINVAL, "no source instance given");
	if (!bridge_uid_valid(info->series_uid) || !bridge_uid_valid(info->sop_instance_uid))
		return r3d_err_set(err, R3D_EINVAL, "missing or malformed series or SOP instance UID");
	if (info->series_number < 0 || info->series_number > 2147483647L ||
	    info->instance_number < 1 || info->instance_number > 2147483647L)
		return r3d_err_set(err, R3D_EINVAL, "series number %ld or instance number %ld out of range",
				   info->series_number, info->instance_number);
	if (!text_ok(info->series_description, BRIDGE_LO_MAX))
		return r3d_err_set(err, R3D_EINVAL, "series description empty, too long or with "
				   "control characters");
	if (info->device_serial_number != nullptr && !text_ok(info->device_serial_number, BRIDGE_LO_MAX))
		return r3d_err_set(err, R3D_EINVAL, "malformed device serial number");
	if (info->content_date != nullptr && !digits_ok(info->content_date, 8, 8, false))
		return r3d_err_set(err, R3D_EINVAL, "content date '%s' is not YYYYMMDD", info->content_date);
	if (info->content_time != nullptr && !digits_ok(info->content_time, 6, 13, true))
		return r3d_err_set(err, R3D_EINVAL, "content time '%s' is not HHMMSS[.F]", info->content_time);
	return true;
}

bool put_recognizable(DcmItem *it, const struct bridge_export_info *info)
{
	const char *v = info->recognizable == BRIDGE_FLAG_YES ? "YES" :
			info->recognizable == BRIDGE_FLAG_NO ? "NO" : nullptr;
	return v == nullptr || it->putAndInsertString(DCM_RecognizableVisualFeatures, v).good();
}

}  // namespace r3d_bridge_util
