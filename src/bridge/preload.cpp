/*
 * preload.cpp: the pre-loader's cache of decoded instances (see "Pre-loaded
 * series" in r3d/bridge.h). Each file is decoded by the same decoder the
 * series reader uses (r3d_read::file_decode), so a job that takes a file
 * from here gets exactly what reading it would have given.
 *
 * Why files are matched by stat() identity (inode, size, mtime and ctime,
 * to the nanosecond) and name rather than by a hash of their bytes: the
 * receiver never rewrites a stored file in place; an instance sent again
 * is written to a new temporary file and linked or renamed over the old
 * name, so new content always means a new inode (and a new ctime). Hashing
 * every file again at job start would cost about as much as reading it,
 * which is what the pre-loader is there to save. The pre-loader also
 * replaces the entry for a path as soon as a new file is stored there.
 *
 * Threads: bridge_preload_file() is called by the pre-loader thread
 * (src/preload/preload.c); take, drop, expire and stats by the pre-loader
 * and worker threads. One mutex guards the maps and the counters; decoding
 * runs outside it. A bridge_preload_set belongs to one job (one thread).
 */
#include "r3d/bridge.h"

#include <sys/stat.h>

#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include "read_int.h"

#define PRELOAD_FILE_OVERHEAD 1024   /* bytes counted per file beyond its pixels: names,
				      * slice records, map nodes */

namespace {

struct file_id {
	dev_t dev = 0;
	ino_t ino = 0;
	off_t size = 0;
	long long mtime_ns = 0, ctime_ns = 0;

	bool operator==(const file_id &o) const
	{
		return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns &&
		       ctime_ns == o.ctime_ns;
	}
};

bool file_id_get(const std::string &path, file_id &id)
{
	struct stat st;

	if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	id.dev = st.st_dev;
	id.ino = st.st_ino;
	id.size = st.st_size;
	id.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
	id.ctime_ns = static_cast<long long>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
	return true;
}

std::string name_of(const std::string &path)
{
	size_t slash = path.find_last_of('/');

	return slash == std::string::npos ? path : path.substr(slash + 1);
}

typedef std::pair<dev_t, ino_t> inode_key;

struct cached_file {
	file_id id;
	std::string path;
	bridge_series part;   /* one file's frames, not linked */
	size_t bytes = 0;
};

} // namespace

struct bridge_preload_set {
	std::map<inode_key, cached_file> files;
	std::map<std::string, inode_key> by_path;
	size_t bytes = 0;

	void erase(std::map<inode_key, cached_file>::iterator it)
	{
		bytes -= it->second.bytes;
		by_path.erase(it->second.path);
		files.erase(it);
	}
};

struct bridge_preload {
	struct series_entry {
		bridge_preload_set set;
		double last_fed = 0;
	};
	std::mutex m;
	size_t cap = 0;
	size_t bytes = 0;   /* over every series */
	std::map<std::string, series_entry> series;
	bridge_preload_stats st = {};

	/* Lock held. Drops series other than keep, fed longest ago and idle
	 * for idle_s at least, until need more bytes fit. */
	bool make_room(size_t need, const std::string &keep, double now, double idle_s)
	{
		while (bytes + need > cap) {
			auto oldest = series.end();
			for (auto it = series.begin(); it != series.end(); ++it) {
				if (it->first == keep || now - it->second.last_fed < idle_s)
					continue;
				if (oldest == series.end() || it->second.last_fed < oldest->second.last_fed)
					oldest = it;
			}
			if (oldest == series.end())
				return false;
			bytes -= oldest->second.set.bytes;
			series.erase(oldest);
			st.series_evicted++;
		}
		return true;
	}
};

bool r3d_read::preload_set_take_file(struct bridge_preload_set *set, const std::string &path,
				     bridge_series &part)
{
	file_id id;

	if (set == nullptr || set->files.empty() || !file_id_get(path, id))
		return false;
	auto it = set->files.find(inode_key(id.dev, id.ino));
	if (it == set->files.end())
		return false;
	if (!(it->second.id == id) || name_of(it->second.path) != name_of(path)) {
		set->erase(it);   /* that file is gone or changed: never of use */
		return false;
	}
	part = std::move(it->second.part);
	set->erase(it);
	return true;
}

extern "C" bool bridge_preload_create(struct r3d_err *err, size_t cap_bytes,
				      struct bridge_preload **out)
{
	*out = nullptr;
	try {
		std::unique_ptr<bridge_preload> p(new bridge_preload);
		p->cap = cap_bytes;
		*out = p.release();
		return true;
	} catch (const std::bad_alloc &) {
		return r3d_err_set(err, R3D_ENOMEM, "pre-loader: out of memory");
	}
}

extern "C" void bridge_preload_destroy(struct bridge_preload *p)
{
	delete p;
}

extern "C" int bridge_preload_file(struct r3d_err *err, struct bridge_preload *p,
				   const char *series_uid, const char *path, size_t estimate_bytes,
				   double now, double evict_idle_s)
{
	try {
		std::string uid(series_uid), file(path);
		file_id before, after;
		cached_file c;

		{
			std::lock_guard<std::mutex> g(p->m);
			if (!p->make_room(estimate_bytes, uid, now, evict_idle_s)) {
				p->st.files_refused++;
				return 0;
			}
		}
		if (!file_id_get(file, before))
			return 0;   /* gone already */
		if (!r3d_read::file_decode(err, file, c.part)) {
			std::lock_guard<std::mutex> g(p->m);
			p->st.files_failed++;
			return -1;
		}
		if (!file_id_get(file, after) || !(before == after))
			return 0;   /* replaced while it was read: the next offer has it */
		c.id = before;
		c.path = file;
		c.bytes = PRELOAD_FILE_OVERHEAD;
		for (const std::vector<uint16_t> &px : c.part.pixels)
			c.bytes += px.size() * sizeof(uint16_t);

		std::lock_guard<std::mutex> g(p->m);
		bridge_preload::series_entry &e = p->series[uid];
		auto old = e.set.by_path.find(file);
		if (old != e.set.by_path.end()) {
			auto it = e.set.files.find(old->second);
			p->bytes -= it->second.bytes;
			e.set.erase(it);
		}
		e.last_fed = now;
		if (!p->make_room(c.bytes, uid, now, evict_idle_s)) {
			p->st.files_refused++;
			if (e.set.files.empty())
				p->series.erase(uid);
			return 0;
		}
		inode_key key(c.id.dev, c.id.ino);
		auto same = e.set.files.find(key);   /* an inode reused under another name */
		if (same != e.set.files.end()) {
			p->bytes -= same->second.bytes;
			e.set.erase(same);
		}
		size_t bytes = c.bytes;
		e.set.by_path[file] = key;
		e.set.files.emplace(key, std::move(c));
		e.set.bytes += bytes;
		p->bytes += bytes;
		p->st.files_kept++;
		return 1;
	} catch (const std::bad_alloc &) {
		r3d_err_set(err, R3D_ENOMEM, "pre-loader: out of memory");
	} catch (...) {
		r3d_err_set(err, R3D_EIO, "pre-loader: unexpected failure");
	}
	std::lock_guard<std::mutex> g(p->m);
	p->st.files_failed++;
	return -1;
}

extern "C" size_t bridge_preload_expire(struct bridge_preload *p, double now, double idle_s)
{
	std::lock_guard<std::mutex> g(p->m);
	size_t n = 0;

	for (auto it = p->series.begin(); it != p->series.end();) {
		if (now - it->second.last_fed >= idle_s) {
			p->bytes -= it->second.set.bytes;
			it = p->series.erase(it);
			p->st.series_evicted++;
			n++;
		} else {
			++it;
		}
	}
	return n;
}

extern "C" struct bridge_preload_set *bridge_preload_take(struct bridge_preload *p,
							  const char *series_uid)
{
	try {
		std::lock_guard<std::mutex> g(p->m);
		auto it = p->series.find(series_uid);
		if (it == p->series.end())
			return nullptr;
		std::unique_ptr<bridge_preload_set> set(new bridge_preload_set);
		set->files.swap(it->second.set.files);
		set->by_path.swap(it->second.set.by_path);
		set->bytes = it->second.set.bytes;
		p->bytes -= set->bytes;
		p->series.erase(it);
		return set.release();
	} catch (...) {
		return nullptr;   /* the job reads its files */
	}
}

extern "C" void bridge_preload_drop(struct bridge_preload *p, const char *series_uid)
{
	std::lock_guard<std::mutex> g(p->m);
	auto it = p->series.find(series_uid);

	if (it == p->series.end())
		return;
	p->bytes -= it->second.set.bytes;
	p->series.erase(it);
}

extern "C" void bridge_preload_get_stats(struct bridge_preload *p, struct bridge_preload_stats *out)
{
	std::lock_guard<std::mutex> g(p->m);

	*out = p->st;
	out->bytes = p->bytes;
	out->series = p->series.size();
	out->files = 0;
	for (const auto &e : p->series)
		out->files += e.second.set.files.size();
}

extern "C" size_t bridge_preload_set_files(const struct bridge_preload_set *s)
{
	return s != nullptr ? s->files.size() : 0;
}

extern "C" void bridge_preload_set_free(struct bridge_preload_set *s)
{
	delete s;
}
