/*
 * net.cpp: the storage SCP side of the DICOM bridge (see r3d/bridge.h):
 * process-wide initialisation, the acceptor, association negotiation and the
 * C-ECHO / C-STORE loop. Datasets are streamed to disk exactly as received
 * (bit for bit) with DCMTK's file-stream receiver; nothing here parses them.
 *
 * Threads: bridge_init/bridge_cleanup and the acceptor functions run on the
 * receiver's thread; each association is then served by one association
 * thread. No exception leaves this file.
 */
#include "r3d/bridge.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcostrmf.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/oflog/oflog.h"
#include "dcmtk/dcmtls/tlslayer.h"

#include "tls.h"

#define NET_ACSE_TIMEOUT_S 30   /* to read an A-ASSOCIATE-RQ after the connect */
#define NET_ARTIM_S 3           /* after our A-ABORT or release, wait this long for the peer to close */
#define NET_POLL_S 1            /* how often a waiting thread looks at stopping() */
#define NET_MAX_PENDING 64      /* connections waiting for their A-ASSOCIATE-RQ */
#define NET_PARTIAL_POLL_MS 10  /* re-check of a request that arrived in part */
#define NET_MAX_RQ_BYTES 65536  /* the largest A-ASSOCIATE-RQ taken (plain TCP); a larger one is aborted */
#define NET_PDU_ASSOCIATE_RQ 0x01
#define NET_PDU_ABORT 0x07
/* PS3.8 9.3.8: A-ABORT source and reason/diag values. */
#define NET_ABORT_SOURCE_USER 0
#define NET_ABORT_SOURCE_PROVIDER 2
#define NET_ABORT_REASON_NONE 0
#define NET_ABORT_REASON_UNRECOGNIZED_PDU 1
#define NET_ABORT_REASON_UNEXPECTED_PDU 2
#define NET_ABORT_REASON_INVALID_PARAMETER 6

/* A connection accepted but not yet handed to DCMTK: its A-ASSOCIATE-RQ is
 * read by DCMTK on the receiver's thread, so it is handed over only once the
 * whole request is in the socket buffer. A peer that connects and sends
 * nothing (a port probe, a stuck client) then delays nobody else. */
struct net_pending {
	int fd;
	int listener;   /* index in bridge_net.l */
	struct timespec deadline;
	bool partial;   /* some bytes in, not the whole request yet */
};

/* One listening port: plain TCP, or DICOM TLS (its network owns the TLS
 * transport layer). */
struct net_listener {
	T_ASC_Network *net;
	int fd;
	bool tls;
};

struct bridge_net {
	struct net_listener l[2];
	int nl;
	int max_pdu;
	int request_timeout_s;   /* a connection's time to send its whole A-ASSOCIATE-RQ */
	int npending;
	struct net_pending pending[NET_MAX_PENDING];
};

struct bridge_assoc {
	T_ASC_Association *assoc;
};

/* Transfer syntaxes recon3d stores, in no particular order: the peer's
 * order of preference decides (see bridge_assoc_accept). */
static const char *const stored_transfer_syntaxes[] = {
	UID_LittleEndianImplicitTransferSyntax,
	UID_LittleEndianExplicitTransferSyntax,
	UID_BigEndianExplicitTransferSyntax,
	UID_DeflatedExplicitVRLittleEndianTransferSyntax,
	UID_JPEGProcess1TransferSyntax,
	UID_JPEGProcess2_4TransferSyntax,
	UID_JPEGProcess6_8TransferSyntax,
	UID_JPEGProcess10_12TransferSyntax,
	UID_JPEGProcess14TransferSyntax,
	UID_JPEGProcess14SV1TransferSyntax,
	UID_JPEGLSLosslessTransferSyntax,
	UID_JPEGLSLossyTransferSyntax,
	UID_JPEG2000LosslessOnlyTransferSyntax,
	UID_JPEG2000TransferSyntax,
	UID_RLELosslessTransferSyntax,
};

static std::atomic<unsigned long> tmp_counter{0};

static void copy_str(char *dst, size_t size, const char *src)
{
	if (size == 0)
		return;
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* Trims the spaces DICOM pads AE titles with. */
static void trim(char *s)
{
	size_t n = strlen(s);
	size_t i = 0;

	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
	while (s[i] == ' ')
		i++;
	if (i > 0)
		memmove(s, s + i, n - i + 1);
}

extern "C" bool bridge_init(struct r3d_err *err)
{
	try {
		/* DCMTK reads TCP_NODELAY for every socket it opens or is handed
		 * (we also set it on each accepted socket ourselves): without it
		 * each C-STORE waits ~40 ms on delayed ACKs. */
		if (setenv("TCP_NODELAY", "1", 1) != 0)
			return r3d_err_set(err, R3D_EIO, "cannot set TCP_NODELAY: %s", strerror(errno));
		/* Peers are logged by address; a reverse lookup can stall accept. */
		dcmDisableGethostbyaddr.set(OFTrue);
		/* DCMTK's own log would not follow our one-line format; errors
		 * reach our log through the conditions we return. */
		OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
		if (!dcmDataDict.isDictionaryLoaded())
			return r3d_err_set(err, R3D_EIO,
					   "DICOM data dictionary not loaded (check DCMDICTPATH)");
		DJDecoderRegistration::registerCodecs();
		DJLSDecoderRegistration::registerCodecs();
		DcmRLEDecoderRegistration::registerCodecs();
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "DICOM toolkit initialisation failed");
	}
	return true;
}

extern "C" void bridge_cleanup(void)
{
	try {
		DJDecoderRegistration::cleanup();
		DJLSDecoderRegistration::cleanup();
		DcmRLEDecoderRegistration::cleanup();
	} catch (...) {
	}
}

extern "C" bool bridge_uid_valid(const char *uid)
{
	size_t n;

	if (uid == NULL)
		return false;
	n = strlen(uid);
	if (n == 0 || n > BRIDGE_UID_MAX || uid[0] == '.' || uid[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (uid[i] == '.') {
			if (uid[i + 1] == '.')
				return false;
		} else if (uid[i] < '0' || uid[i] > '9') {
			return false;
		}
	}
	return true;
}

/* Our own listening socket, so that [dicom] bind is honoured: DCMTK 3.6.7
 * would listen on every interface. We accept() on it ourselves and hand each
 * connection to DCMTK through dcmExternalSocketHandle (its inetd mode). */
static int listen_socket(struct r3d_err *err, const char *bind_addr, int port)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	char service[16];
	int fd = -1;
	int one = 1;
	int rc;

	memset(&hints, 0, sizeof(hints));
	/* DCMTK 3.6.7 formats peer addresses as IPv4 only. */
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(bind_addr, service, &hints, &res);
	if (rc != 0) {
		r3d_err_set(err, R3D_EINVAL, "cannot resolve bind address '%s': %s", bind_addr,
			    gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0) {
		r3d_err_set(err, R3D_EIO, "socket: %s", strerror(errno));
		goto out;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
		r3d_err_set(err, R3D_EIO, "cannot listen on %s:%d: %s", bind_addr, port,
			    strerror(errno));
		close(fd);
		fd = -1;
		goto out;
	}
	if (listen(fd, 64) != 0) {
		r3d_err_set(err, R3D_EIO, "listen on %s:%d: %s", bind_addr, port, strerror(errno));
		close(fd);
		fd = -1;
	}
out:
	freeaddrinfo(res);
	return fd;
}

/* Opens one listener of bn: its socket and its DCMTK network (with a TLS
 * transport layer when tls is not NULL). */
static bool listener_open(struct r3d_err *err, struct bridge_net *bn, const char *bind_addr, int port,
			  const struct bridge_tls *tls)
{
	struct net_listener *l = &bn->l[bn->nl];
	DcmTLSTransportLayer *layer = NULL;

	if (tls != NULL && (layer = r3d_bridge_tls::layer_new(err, NET_ACCEPTOR, tls)) == NULL)
		return r3d_err_prefix(err, "[dicom] tls_port %d", port);
	int fd = listen_socket(err, bind_addr, port);
	if (fd < 0) {
		delete layer;
		return false;
	}
	l->fd = fd;
	l->net = NULL;
	l->tls = tls != NULL;
	/* With an external socket set, DCMTK opens no listener of its own. */
	dcmExternalSocketHandle.set(fd);
	OFCondition cond = ASC_initializeNetwork(NET_ACCEPTOR, port, NET_ARTIM_S, &l->net);
	dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
	if (cond.good() && layer != NULL) {
		cond = ASC_setTransportLayer(l->net, layer, 1);
		if (cond.good())
			layer = NULL;   /* the network owns it */
	}
	if (cond.bad()) {
		r3d_err_set(err, R3D_EIO, "DICOM network: %s", cond.text());
		delete layer;
		if (l->net != NULL)
			ASC_dropNetwork(&l->net);
		close(fd);
		return false;
	}
	bn->nl++;
	return true;
}

extern "C" bool bridge_net_open_tls(struct r3d_err *err, const char *bind_addr, int port, int tls_port,
				    const struct bridge_tls *tls, int max_pdu, struct bridge_net **out)
{
	struct bridge_net *bn = NULL;

	*out = NULL;
	if (port <= 0 && tls_port <= 0)
		return r3d_err_set(err, R3D_EINVAL, "no DICOM port to listen on");
	try {
		bn = new (std::nothrow) bridge_net;
		if (bn == NULL)
			return r3d_err_set(err, R3D_ENOMEM, "out of memory");
		bn->nl = 0;
		bn->max_pdu = max_pdu;
		bn->request_timeout_s = NET_ACSE_TIMEOUT_S;
		bn->npending = 0;
		if ((port > 0 && !listener_open(err, bn, bind_addr, port, NULL)) ||
		    (tls_port > 0 && !listener_open(err, bn, bind_addr, tls_port, tls))) {
			bridge_net_close(bn);
			return false;
		}
	} catch (...) {
		bridge_net_close(bn);
		return r3d_err_set(err, R3D_EIO, "DICOM network initialisation failed");
	}
	*out = bn;
	return true;
}

extern "C" bool bridge_net_open(struct r3d_err *err, const char *bind_addr, int port, int max_pdu,
				struct bridge_net **out)
{
	return bridge_net_open_tls(err, bind_addr, port, 0, NULL, max_pdu, out);
}

extern "C" void bridge_net_set_request_timeout(struct bridge_net *bn, int seconds)
{
	bn->request_timeout_s = seconds > 0 && seconds < NET_ACSE_TIMEOUT_S ? seconds : NET_ACSE_TIMEOUT_S;
}

extern "C" void bridge_net_close(struct bridge_net *bn)
{
	if (bn == NULL)
		return;
	for (int i = 0; i < bn->nl; i++) {
		try {
			ASC_dropNetwork(&bn->l[i].net);
		} catch (...) {
		}
		/* DCMTK closes an external listening socket itself in 3.6.7; make sure. */
		close(bn->l[i].fd);
	}
	for (int i = 0; i < bn->npending; i++)
		close(bn->pending[i].fd);
	delete bn;
}

/* Closes and frees an association. DCMTK first waits for the peer to close
 * its end (PS3.8's ARTIM after an A-ASSOCIATE-RJ, A-RELEASE-RP or A-ABORT):
 * up to wait_s seconds; its default, 180 s, would let a peer that keeps the
 * connection open hold an association slot, or the accept loop, that long. */
static void assoc_free(T_ASC_Association **a, int wait_s)
{
	if (*a == NULL)
		return;
	try {
		ASC_dropSCPAssociation(*a, wait_s);
		ASC_destroyAssociation(a);
	} catch (...) {
	}
	*a = NULL;
}

static bool time_passed(const struct timespec *now, const struct timespec *t)
{
	return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

static void pending_remove(struct bridge_net *bn, int i)
{
	bn->pending[i] = bn->pending[--bn->npending];
}

/* request_ready: the first PDU is no A-ASSOCIATE-RQ we take. */
#define NET_REQUEST_INVALID 2

/* Whether the whole first PDU of fd is buffered: 1 yes (or the peer closed:
 * DCMTK reads and judges it), 0 not yet, -1 nothing will come (closed before
 * a byte), NET_REQUEST_INVALID when its header already says it is no
 * A-ASSOCIATE-RQ or is larger than NET_MAX_RQ_BYTES (*type, *len: what it
 * says). Handing such a request to DCMTK would make the receiver's thread
 * wait for bytes that may never come. On a TLS listener the first record
 * (the ClientHello: 5 header bytes, its length in bytes 3 and 4) takes the
 * place of the PDU. */
static int request_ready(int fd, bool tls, unsigned *type, uint32_t *length)
{
	unsigned char head[6];
	size_t want = tls ? 5 : sizeof(head);
	ssize_t n = recv(fd, head, want, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return -1;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	/* A peer that closed after part of a request sends no more: DCMTK
	 * reads what is there and fails at once, instead of the connection
	 * holding a pending slot for NET_ACSE_TIMEOUT_S (found by fuzzing). */
	struct pollfd hup = {fd, POLLRDHUP, 0};
	bool closed = poll(&hup, 1, 0) > 0 && (hup.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
	if (n < (ssize_t)want)
		return closed ? 1 : 0;
	uint32_t len = tls ? ((uint32_t)head[3] << 8 | (uint32_t)head[4]) :
			     ((uint32_t)head[2] << 24 | (uint32_t)head[3] << 16 | (uint32_t)head[4] << 8 |
			      (uint32_t)head[5]);
	if (!tls && (head[0] != NET_PDU_ASSOCIATE_RQ || len > NET_MAX_RQ_BYTES)) {
		*type = head[0];
		*length = len;
		return NET_REQUEST_INVALID;
	}
	if (len > NET_MAX_RQ_BYTES)
		return 1;
	int avail = 0;
	if (ioctl(fd, FIONREAD, &avail) != 0)
		return 1;
	return closed || (uint32_t)avail >= len + want ? 1 : 0;
}

/* The numeric address of the peer of a connected socket, or "". */
static void peer_of(int fd, char *out, size_t size)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);

	out[0] = '\0';
	if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
		return;
	if (getnameinfo((struct sockaddr *)&sa, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST) != 0)
		out[0] = '\0';
}

/* An A-ABORT PDU (PS3.8 9.3.8) with the given source and reason. */
static void abort_pdu(unsigned char pdu[10], int source, int reason)
{
	static const unsigned char head[8] = {NET_PDU_ABORT, 0, 0, 0, 0, 4, 0, 0};

	memcpy(pdu, head, sizeof(head));
	pdu[8] = (unsigned char)source;
	pdu[9] = (unsigned char)(source == NET_ABORT_SOURCE_PROVIDER ? reason : NET_ABORT_REASON_NONE);
}

/* A connection whose first PDU is no A-ASSOCIATE-RQ we take: PS3.8 state
 * Sta2, event 19 (invalid PDU), action AA-1: an A-ABORT, then close. Nothing
 * of the PDU's body is read. Returns -2 with err set for the caller's log. */
static int refuse_request(struct r3d_err *err, int fd, unsigned type, uint32_t len)
{
	unsigned char pdu[10];
	char peer[BRIDGE_HOST_MAX];

	peer_of(fd, peer, sizeof(peer));
	abort_pdu(pdu, NET_ABORT_SOURCE_USER, NET_ABORT_REASON_NONE);
	(void)send(fd, pdu, sizeof(pdu), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	if (type != NET_PDU_ASSOCIATE_RQ)
		r3d_err_set(err, R3D_ENET, "from %s: first PDU of type 0x%02x is not an A-ASSOCIATE-RQ; "
			    "A-ABORT sent", peer, type);
	else
		r3d_err_set(err, R3D_ENET, "from %s: A-ASSOCIATE-RQ of %lu bytes, more than %d; A-ABORT sent",
			    peer, (unsigned long)len, NET_MAX_RQ_BYTES);
	return -2;
}

/* Waits for a connection whose association request is fully in, accepting
 * new connections into the pending list on the way. Returns the fd to hand
 * over (*listener: which port it came in on), -1 when none is ready within
 * timeout_ms, -2 on a pending connection dropped for silence (err set, for
 * the caller's log). */
static int next_ready(struct r3d_err *err, struct bridge_net *bn, int timeout_ms, int *listener)
{
	struct pollfd pfd[NET_MAX_PENDING + 2];
	struct timespec now;
	int n = 0, wait_ms = timeout_ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (int i = 0; i < bn->npending; i++) {
		struct net_pending *p = &bn->pending[i];
		long ms = (p->deadline.tv_sec - now.tv_sec) * 1000L +
			  (p->deadline.tv_nsec - now.tv_nsec) / 1000000L;
		if (ms < 0)
			ms = 0;
		if (p->partial && ms > NET_PARTIAL_POLL_MS)
			ms = NET_PARTIAL_POLL_MS;
		if (ms < wait_ms)
			wait_ms = (int)ms;
	}
	for (int k = 0; k < bn->nl; k++)
		pfd[n++] = (struct pollfd){bn->l[k].fd, POLLIN, 0};
	for (int i = 0; i < bn->npending; i++)
		/* A partial request keeps its socket readable: look at it by time, not by poll. */
		pfd[n++] = (struct pollfd){bn->pending[i].fd, (short)(bn->pending[i].partial ? 0 : POLLIN), 0};
	int prc = poll(pfd, (nfds_t)n, wait_ms);
	if (prc < 0 && errno != EINTR) {
		r3d_err_set(err, R3D_ENET, "poll: %s", strerror(errno));
		return -2;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* The pending connections first: they have waited longest. */
	for (int i = bn->npending - 1; i >= 0; i--) {
		struct net_pending *p = &bn->pending[i];
		if (!p->partial && !(pfd[bn->nl + i].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !time_passed(&now, &p->deadline))
			continue;
		unsigned type = 0;
		uint32_t len = 0;
		int ready = request_ready(p->fd, bn->l[p->listener].tls, &type, &len);
		if (ready == NET_REQUEST_INVALID) {
			int fd = p->fd;
			pending_remove(bn, i);
			return refuse_request(err, fd, type, len);
		}
		if (ready == 1) {
			int fd = p->fd;
			*listener = p->listener;
			pending_remove(bn, i);
			return fd;
		}
		if (ready < 0) {
			/* Closed before sending anything: a port probe. Nothing to say. */
			close(p->fd);
			pending_remove(bn, i);
			continue;
		}
		if (time_passed(&now, &p->deadline)) {
			close(p->fd);
			pending_remove(bn, i);
			r3d_err_set(err, R3D_ENET, "a connection sent no complete association request "
						  "within %d s; closed", bn->request_timeout_s);
			return -2;
		}
		p->partial = true;
	}
	for (int k = 0; k < bn->nl; k++) {
		if (!(pfd[k].revents & POLLIN))
			continue;
		int fd = accept4(bn->l[k].fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				continue;
			r3d_err_set(err, R3D_ENET, "accept: %s", strerror(errno));
			return -2;
		}
		/* Without it each C-STORE response waits ~40 ms for a delayed ACK. */
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		unsigned type = 0;
		uint32_t len = 0;
		int ready = request_ready(fd, bn->l[k].tls, &type, &len);
		if (ready == NET_REQUEST_INVALID)
			return refuse_request(err, fd, type, len);
		if (ready == 1) {
			*listener = k;
			return fd;
		}
		if (bn->npending == NET_MAX_PENDING) {
			/* Full of silent connections: the oldest makes room. */
			int oldest = 0;
			for (int i = 1; i < bn->npending; i++)
				if (!time_passed(&bn->pending[oldest].deadline, &bn->pending[i].deadline))
					oldest = i;
			close(bn->pending[oldest].fd);
			pending_remove(bn, oldest);
		}
		struct net_pending *p = &bn->pending[bn->npending++];
		p->fd = fd;
		p->listener = k;
		p->partial = false;
		p->deadline = now;
		p->deadline.tv_sec += bn->request_timeout_s;
	}
	return -1;
}

extern "C" int bridge_net_accept(struct r3d_err *err, struct bridge_net *bn, int timeout_ms,
				 struct bridge_assoc **out, struct bridge_assoc_info *info)
{
	T_ASC_Association *a = NULL;

	*out = NULL;
	memset(info, 0, sizeof(*info));
	int k = 0;
	int fd = next_ready(err, bn, timeout_ms, &k);
	if (fd == -1)
		return 0;
	if (fd < 0)
		return -1;
	const struct net_listener *l = &bn->l[k];
	char peer[BRIDGE_HOST_MAX];
	peer_of(fd, peer, sizeof(peer));
	try {
		/* The connection is handed over; DCMTK owns and closes fd from here
		 * (on a TLS listener the handshake happens in this call). */
		dcmExternalSocketHandle.set(fd);
		OFCondition cond = ASC_receiveAssociation(l->net, &a, bn->max_pdu, NULL, NULL,
							  l->tls ? OFTrue : OFFalse, DUL_NOBLOCK,
							  NET_ACSE_TIMEOUT_S);
		dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
		if (cond.bad()) {
			copy_str(info->peer_host, sizeof(info->peer_host), peer);
			assoc_free(&a, 0);
			if (l->tls && (cond.module() == OFM_dcmtls || cond.code() == DULC_TLSERROR)) {
				r3d_err_set(err, R3D_ENET, "%s", cond.text());
				return BRIDGE_ACCEPT_TLS_FAILED;
			}
			r3d_err_set(err, R3D_ENET, "receiving association request from %s: %s", peer,
				    cond.text());
			return -1;
		}
		info->tls = l->tls;
		if (l->tls)
			r3d_bridge_tls::peer_subject(a, info->peer_subject, sizeof(info->peer_subject));
		char calling[64] = "", called[64] = "", addr[BRIDGE_HOST_MAX] = "";
		ASC_getAPTitles(a->params, calling, sizeof(calling), called, sizeof(called), NULL, 0);
		ASC_getPresentationAddresses(a->params, addr, sizeof(addr), NULL, 0);
		trim(calling);
		trim(called);
		copy_str(info->calling_ae, sizeof(info->calling_ae), calling);
		copy_str(info->called_ae, sizeof(info->called_ae), called);
		copy_str(info->peer_host, sizeof(info->peer_host), addr);
		info->proposed_contexts = (unsigned)ASC_countPresentationContexts(a->params);
		struct bridge_assoc *ba = new (std::nothrow) bridge_assoc;
		if (ba == NULL) {
			assoc_free(&a, 0);
			r3d_err_set(err, R3D_ENOMEM, "out of memory");
			return -1;
		}
		ba->assoc = a;
		*out = ba;
		return 1;
	} catch (...) {
		dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
		assoc_free(&a, 0);
		r3d_err_set(err, R3D_EIO, "unexpected error while accepting an association");
		return -1;
	}
}

extern "C" void bridge_assoc_reject(struct bridge_assoc *ba, enum bridge_reject_reason why)
{
	T_ASC_RejectParameters rej;

	switch (why) {
	case BRIDGE_REJECT_CALLING_AE:
		rej = {ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
		       ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED};
		break;
	case BRIDGE_REJECT_CALLED_AE:
		rej = {ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
		       ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED};
		break;
	case BRIDGE_REJECT_BUSY:
		rej = {ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
		       ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED};
		break;
	default:
		rej = {ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER, ASC_REASON_SU_NOREASON};
		break;
	}
	try {
		ASC_rejectAssociation(ba->assoc, &rej);
	} catch (...) {
	}
	assoc_free(&ba->assoc, 0);
	delete ba;
}

static bool is_storage_or_verification(const char *abstract)
{
	if (strcmp(abstract, UID_VerificationSOPClass) == 0)
		return true;
	/* Newer than DCMTK 3.6.7's table; imported like any Segmentation. */
	if (strcmp(abstract, BRIDGE_UID_LABELMAP_SEG_STORAGE) == 0)
		return true;
	for (int i = 0; i < numberOfDcmAllStorageSOPClassUIDs; i++) {
		if (strcmp(abstract, dcmAllStorageSOPClassUIDs[i]) == 0)
			return true;
	}
	return false;
}

static bool is_stored_syntax(const char *ts)
{
	for (const char *s : stored_transfer_syntaxes) {
		if (strcmp(ts, s) == 0)
			return true;
	}
	return false;
}

extern "C" bool bridge_assoc_accept(struct r3d_err *err, struct bridge_assoc *ba, unsigned *accepted)
{
	unsigned n_ok = 0;

	*accepted = 0;
	try {
		T_ASC_Parameters *params = ba->assoc->params;
		int n = ASC_countPresentationContexts(params);
		for (int i = 0; i < n; i++) {
			T_ASC_PresentationContext pc;
			if (ASC_getPresentationContext(params, i, &pc).bad())
				continue;
			if (!is_storage_or_verification(pc.abstractSyntax)) {
				ASC_refusePresentationContext(params, pc.presentationContextID,
							      ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
				continue;
			}
			/* The first syntax the peer proposes that we store: the
			 * instance is kept as the sender has it. */
			const char *chosen = NULL;
			for (int t = 0; t < pc.transferSyntaxCount && chosen == NULL; t++) {
				if (is_stored_syntax(pc.proposedTransferSyntaxes[t]))
					chosen = pc.proposedTransferSyntaxes[t];
			}
			if (chosen == NULL) {
				ASC_refusePresentationContext(params, pc.presentationContextID,
							      ASC_P_TRANSFERSYNTAXESNOTSUPPORTED);
				continue;
			}
			if (ASC_acceptPresentationContext(params, pc.presentationContextID, chosen)
				    .good())
				n_ok++;
		}
		OFCondition cond = ASC_acknowledgeAssociation(ba->assoc);
		if (cond.bad()) {
			r3d_err_set(err, R3D_ENET, "acknowledging association: %s", cond.text());
			ASC_abortAssociation(ba->assoc);
			assoc_free(&ba->assoc, 0);
			delete ba;
			return false;
		}
	} catch (...) {
		assoc_free(&ba->assoc, 0);
		delete ba;
		return r3d_err_set(err, R3D_EIO, "unexpected error while accepting an association");
	}
	*accepted = n_ok;
	return true;
}

extern "C" void bridge_assoc_abort(struct bridge_assoc *ba)
{
	try {
		ASC_abortAssociation(ba->assoc);
	} catch (...) {
	}
	assoc_free(&ba->assoc, 0);
	delete ba;
}

static uint16_t send_store_response(T_ASC_Association *a, T_ASC_PresentationContextID pres_id,
				    T_DIMSE_C_StoreRQ *req, uint16_t status, const char *comment,
				    OFCondition *cond)
{
	T_DIMSE_C_StoreRSP rsp;
	DcmDataset *detail = NULL;

	memset(&rsp, 0, sizeof(rsp));
	rsp.MessageIDBeingRespondedTo = req->MessageID;
	rsp.DimseStatus = status;
	rsp.DataSetType = DIMSE_DATASET_NULL;
	copy_str(rsp.AffectedSOPClassUID, sizeof(rsp.AffectedSOPClassUID), req->AffectedSOPClassUID);
	copy_str(rsp.AffectedSOPInstanceUID, sizeof(rsp.AffectedSOPInstanceUID),
		 req->AffectedSOPInstanceUID);
	rsp.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
	if (status != BRIDGE_STATUS_SUCCESS && comment != NULL && comment[0] != '\0') {
		detail = new (std::nothrow) DcmDataset;
		if (detail != NULL) {
			char c[65];
			copy_str(c, sizeof(c), comment);
			detail->putAndInsertString(DCM_ErrorComment, c);
		}
	}
	*cond = DIMSE_sendStoreResponse(a, pres_id, req, &rsp, detail);
	delete detail;
	return status;
}

/* Receives one C-STORE dataset into a fresh temporary file and answers it. */
static OFCondition serve_store(T_ASC_Association *a, T_ASC_PresentationContextID pres_id,
			       T_DIMSE_C_StoreRQ *req, const char *tmp_dir,
			       const struct bridge_serve_ops *ops, struct bridge_serve_stats *stats)
{
	char tmp_path[4096];
	char comment[128] = "";
	struct bridge_store_req sreq;
	DcmOutputFileStream *fs = NULL;
	T_ASC_PresentationContextID data_pres_id = 0;
	uint16_t status;
	OFCondition cond;
	struct stat st;

	memset(&sreq, 0, sizeof(sreq));
	if (ops->can_store != NULL && !ops->can_store(ops->ctx, comment, sizeof(comment))) {
		DIC_UL bytes = 0, pdvs = 0;
		cond = DIMSE_ignoreDataSet(a, DIMSE_BLOCKING, 0, &bytes, &pdvs);
		if (cond.bad())
			return cond;
		stats->stores_failed++;
		send_store_response(a, pres_id, req, BRIDGE_STATUS_OUT_OF_RESOURCES, comment, &cond);
		return cond;
	}
	snprintf(tmp_path, sizeof(tmp_path), "%s/rcv-%ld-%lu.part", tmp_dir, (long)getpid(),
		 tmp_counter.fetch_add(1));
	cond = DIMSE_createFilestream(OFFilename(tmp_path), req, a, pres_id, OFTrue, &fs);
	if (cond.bad()) {
		DIC_UL bytes = 0, pdvs = 0;
		OFCondition c2 = DIMSE_ignoreDataSet(a, DIMSE_BLOCKING, 0, &bytes, &pdvs);
		if (c2.bad())
			return c2;
		stats->stores_failed++;
		send_store_response(a, pres_id, req, BRIDGE_STATUS_OUT_OF_RESOURCES,
				    "cannot create file", &cond);
		return cond;
	}
	cond = DIMSE_receiveDataSetInFile(a, DIMSE_BLOCKING, 0, &data_pres_id, fs, NULL, NULL);
	bool write_ok = fs->good();
	delete fs;
	if (cond.good() && data_pres_id != pres_id)
		/* PS3.7 9.3.1: a message's data set travels on its command's context. */
		cond = makeOFCondition(OFM_dcmnet, DIMSEC_INVALIDPRESENTATIONCONTEXTID, OF_error,
				       "data set on another presentation context than its C-STORE command");
	if (cond.bad()) {
		unlink(tmp_path);
		return cond;   /* the link is gone or out of step: end the association */
	}
	if (!write_ok || stat(tmp_path, &st) != 0) {
		unlink(tmp_path);
		stats->stores_failed++;
		send_store_response(a, pres_id, req, BRIDGE_STATUS_OUT_OF_RESOURCES,
				    "cannot write file", &cond);
		return cond;
	}
	copy_str(sreq.sop_class_uid, sizeof(sreq.sop_class_uid), req->AffectedSOPClassUID);
	copy_str(sreq.sop_instance_uid, sizeof(sreq.sop_instance_uid), req->AffectedSOPInstanceUID);
	T_ASC_PresentationContext pc;
	if (ASC_findAcceptedPresentationContext(a->params, pres_id, &pc).good()) {
		copy_str(sreq.transfer_syntax, sizeof(sreq.transfer_syntax), pc.acceptedTransferSyntax);
		copy_str(sreq.context_sop_class_uid, sizeof(sreq.context_sop_class_uid), pc.abstractSyntax);
	}
	sreq.tmp_path = tmp_path;
	sreq.bytes = (uint64_t)st.st_size;
	status = ops->store(ops->ctx, &sreq, comment, sizeof(comment));
	if (status == BRIDGE_STATUS_SUCCESS) {
		stats->stores_ok++;
	} else {
		unlink(tmp_path);
		stats->stores_failed++;
	}
	send_store_response(a, pres_id, req, status, comment, &cond);
	return cond;
}

/* The PS3.8 A-ABORT reason for a condition that says the peer sent a PDU
 * the upper layer cannot take, or -1 when cond is no such thing (a network
 * error, a DIMSE-level fault). DCMTK 3.6.7 wraps the upper layer's condition
 * into DIMSE ones and keeps only its "module:code" in the text. */
static int ul_abort_reason(const OFCondition &cond)
{
	static const struct {
		unsigned short code;
		int reason;
	} map[] = {
		{DULC_UNRECOGNIZEDPDUTYPE, NET_ABORT_REASON_UNRECOGNIZED_PDU},
		{DULC_UNEXPECTEDPDU, NET_ABORT_REASON_UNEXPECTED_PDU},
		{DULC_ILLEGALPDULENGTH, NET_ABORT_REASON_INVALID_PARAMETER},
		{DULC_ILLEGALPDU, NET_ABORT_REASON_INVALID_PARAMETER},
	};
	const char *text = cond.text();

	for (const auto &m : map) {
		char code[16];
		if (cond.module() == OFM_dcmnet && cond.code() == m.code)
			return m.reason;
		snprintf(code, sizeof(code), "%04x:%04x", (unsigned)OFM_dcmnet, (unsigned)m.code);
		if (text != NULL && strstr(text, code) != NULL)
			return m.reason;
	}
	return -1;
}

/* Ends an association after cond: a PDU the upper layer could not take is
 * answered as PS3.8 state Sta6, event 19, action AA-8 says (an A-ABORT from
 * the service provider with its reason); anything else with DCMTK's
 * service-user A-ABORT. The caller then drops the association. */
static void abort_for(T_ASC_Association *a, const OFCondition &cond)
{
	int reason = ul_abort_reason(cond);
	DcmTransportConnection *tc = NULL;

	if (reason >= 0)
		tc = DUL_getTransportConnection(a->DULassociation);
	if (tc == NULL) {
		ASC_abortAssociation(a);
		return;
	}
	unsigned char pdu[10];
	abort_pdu(pdu, NET_ABORT_SOURCE_PROVIDER, reason);
	(void)tc->write(pdu, sizeof(pdu));
}

extern "C" bool bridge_assoc_serve(struct r3d_err *err, struct bridge_assoc *ba, const char *tmp_dir,
				   int idle_timeout_s, const struct bridge_serve_ops *ops,
				   struct bridge_serve_stats *stats)
{
	bool ok = true;
	int idle_s = 0;

	memset(stats, 0, sizeof(*stats));
	try {
		T_ASC_Association *a = ba->assoc;
		for (;;) {
			if (ops->stopping != NULL && ops->stopping(ops->ctx)) {
				ASC_abortAssociation(a);
				r3d_err_set(err, R3D_ESTOP, "aborted: the node is stopping");
				ok = false;
				break;
			}
			T_ASC_PresentationContextID pres_id = 0;
			T_DIMSE_Message msg;
			memset(&msg, 0, sizeof(msg));
			OFCondition cond = DIMSE_receiveCommand(a, DIMSE_NONBLOCKING, NET_POLL_S,
								&pres_id, &msg, NULL);
			if (cond == DIMSE_NODATAAVAILABLE) {
				idle_s += NET_POLL_S;
				if (idle_timeout_s > 0 && idle_s >= idle_timeout_s) {
					ASC_abortAssociation(a);
					r3d_err_set(err, R3D_ENET, "aborted after %d s without a message",
						    idle_s);
					ok = false;
					break;
				}
				continue;
			}
			idle_s = 0;
			if (cond == DUL_PEERREQUESTEDRELEASE) {
				ASC_acknowledgeRelease(a);
				stats->released = true;
				break;
			}
			if (cond == DUL_PEERABORTEDASSOCIATION) {
				r3d_err_set(err, R3D_ENET, "peer aborted the association");
				ok = false;
				break;
			}
			if (cond.bad()) {
				r3d_err_set(err, R3D_ENET, "receiving command: %s", cond.text());
				abort_for(a, cond);
				ok = false;
				break;
			}
			if (msg.CommandField == DIMSE_C_ECHO_RQ) {
				cond = DIMSE_sendEchoResponse(a, pres_id, &msg.msg.CEchoRQ,
							      STATUS_Success, NULL);
				stats->echoes++;
			} else if (msg.CommandField == DIMSE_C_STORE_RQ) {
				cond = serve_store(a, pres_id, &msg.msg.CStoreRQ, tmp_dir, ops, stats);
			} else {
				r3d_err_set(err, R3D_EINVAL,
					    "unsupported DIMSE command 0x%04x: association aborted",
					    (unsigned)msg.CommandField);
				ASC_abortAssociation(a);
				ok = false;
				break;
			}
			if (cond.bad()) {
				r3d_err_set(err, R3D_ENET, "%s", cond.text());
				abort_for(a, cond);
				ok = false;
				break;
			}
		}
	} catch (...) {
		r3d_err_set(err, R3D_EIO, "unexpected error while serving an association");
		ok = false;
	}
	assoc_free(&ba->assoc, NET_ARTIM_S);
	delete ba;
	return ok;
}
