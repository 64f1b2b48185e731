/*
 * scu.cpp: the storage SCU side of the DICOM bridge (see "Storage SCU" in
 * r3d/bridge.h): requests an association proposing the presentation
 * contexts a list of Part 10 files needs, sends each file with C-STORE on the
 * right accepted context (decompressing only when the peer does not take the
 * file's own syntax), and classifies every failure as transient (R3D_ENET)
 * or permanent (R3D_EREFUSED) for the sender's retry policy.
 *
 * Threads: any thread; one struct bridge_scu is used by one thread at a
 * time. Each association has its own T_ASC_Network. DCMTK's connect timeout
 * (dcmConnectionTimeout) is process-wide: bridge_scu_open() sets it from its
 * parameters before connecting. No exception leaves this file.
 */
#include "r3d/bridge.h"

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/dcmtls/tlslayer.h>

#include "tls.h"

#define SCU_HOST_MAX 255         /* host name given to bridge_scu_open() */
#define SCU_QUICKACK_WAIT_MS 500 /* wait for a response to ACK at once (see store_progress) */

struct bridge_scu {
	T_ASC_Network *net;
	T_ASC_Association *assoc;
	bool alive;
	int dimse_timeout_s;
	int acse_timeout_s;
	char peer[SCU_HOST_MAX + 16];   /* "host:port", for messages */
	std::vector<std::string> proposed_classes;  /* SOP classes of the files at open, and extra */
	std::vector<std::string> proposed_exact;    /* "class ts": contexts of one syntax */
	struct bridge_scu_info info;
};

namespace {

/* Native (unencapsulated) syntaxes DCMTK converts between without a codec. */
bool ts_uncompressed(const char *ts)
{
	return strcmp(ts, UID_LittleEndianImplicitTransferSyntax) == 0 ||
	       strcmp(ts, UID_LittleEndianExplicitTransferSyntax) == 0 ||
	       strcmp(ts, UID_BigEndianExplicitTransferSyntax) == 0 ||
	       strcmp(ts, UID_DeflatedExplicitVRLittleEndianTransferSyntax) == 0;
}

/* Encapsulated syntaxes whose decoders bridge_init() registers. */
bool ts_decodable(const char *ts)
{
	static const char *const decodable[] = {
		UID_JPEGProcess1TransferSyntax,      UID_JPEGProcess2_4TransferSyntax,
		UID_JPEGProcess6_8TransferSyntax,    UID_JPEGProcess10_12TransferSyntax,
		UID_JPEGProcess14TransferSyntax,     UID_JPEGProcess14SV1TransferSyntax,
		UID_JPEGLSLosslessTransferSyntax,    UID_JPEGLSLossyTransferSyntax,
		UID_RLELosslessTransferSyntax,
	};
	for (const char *d : decodable)
		if (strcmp(ts, d) == 0)
			return true;
	return false;
}

/* Syntaxes a converted dataset may be sent in. */
bool ts_native_target(const char *ts)
{
	return strcmp(ts, UID_LittleEndianExplicitTransferSyntax) == 0 ||
	       strcmp(ts, UID_LittleEndianImplicitTransferSyntax) == 0 ||
	       strcmp(ts, UID_BigEndianExplicitTransferSyntax) == 0;
}

void copy_str(char *dst, size_t size, const char *src)
{
	if (size == 0)
		return;
	snprintf(dst, size, "%s", src != nullptr ? src : "");
}

/* DCMTK's condition text, on one line (stacked conditions come with
 * newlines). */
std::string cond_text(const OFCondition &cond)
{
	std::string s = cond.text();

	for (size_t i = 0; i < s.size(); i++) {
		if (s[i] == '\n' || s[i] == '\r') {
			s.replace(i, 1, "; ");
			i++;
		}
	}
	return s;
}

bool ae_valid(const char *ae)
{
	size_t n;
	bool non_space = false;

	if (ae == nullptr)
		return false;
	n = strlen(ae);
	if (n == 0 || n > BRIDGE_AE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)ae[i];
		if (c < 0x20 || c > 0x7e || c == '\\')
			return false;
		if (c != ' ')
			non_space = true;
	}
	return non_space;
}

/* The SOP class and transfer syntax of a file, from its meta header. */
struct file_meta {
	std::string sop_class;
	std::string ts;
};

bool read_meta(struct r3d_err *err, const char *path, file_meta *out)
{
	DcmFileFormat ff;
	OFString cls, ts;

	OFCondition cond = ff.loadFile(OFFilename(path), EXS_Unknown, EGL_noChange,
				       DCM_MaxReadLength, ERM_metaOnly);
	if (cond.bad())
		return r3d_err_set(err, R3D_EIO, "%s: cannot read: %s", path, cond_text(cond).c_str());
	DcmMetaInfo *meta = ff.getMetaInfo();
	if (meta == nullptr || meta->findAndGetOFString(DCM_MediaStorageSOPClassUID, cls).bad() ||
	    meta->findAndGetOFString(DCM_TransferSyntaxUID, ts).bad() || cls.empty() ||
	    ts.empty())
		return r3d_err_set(err, R3D_EINVAL,
				   "%s: no SOP class or transfer syntax in its meta header", path);
	out->sop_class = cls.c_str();
	out->ts = ts.c_str();
	return true;
}

struct proposal {
	std::string abstract;
	std::vector<std::string> syntaxes;
};

void propose(std::vector<proposal> *list, const std::string &abstract,
	     const std::vector<std::string> &syntaxes)
{
	for (const proposal &p : *list)
		if (p.abstract == abstract && p.syntaxes == syntaxes)
			return;
	list->push_back({abstract, syntaxes});
}

/* The contexts files need, in the order of first use. Acceptors pick the
 * syntax of a context by their own preference, not ours (storescp +xa takes
 * Explicit LE out of [Implicit, Explicit]), so a file's own syntax gets a
 * context of its own; one [Explicit LE, Implicit LE] context per SOP class is
 * the fallback for files that are uncompressed or that DCMTK can decode. */
void build_proposals(const std::vector<file_meta> &metas, std::vector<proposal> *list)
{
	const std::string ex = UID_LittleEndianExplicitTransferSyntax;
	const std::string im = UID_LittleEndianImplicitTransferSyntax;

	for (const file_meta &m : metas) {
		if (m.ts != ex)
			propose(list, m.sop_class, {m.ts});
		if (m.ts == ex || ts_uncompressed(m.ts.c_str()) || ts_decodable(m.ts.c_str()))
			propose(list, m.sop_class, {ex, im});
	}
}

const char *reject_reason_text(const T_ASC_RejectParameters &rej)
{
	switch (rej.reason) {
	case ASC_REASON_SU_NOREASON: return "no reason given";
	case ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED: return "application context name not supported";
	case ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED: return "calling AE title not recognized";
	case ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED: return "called AE title not recognized";
	case ASC_REASON_SP_ACSE_NOREASON: return "no reason given (ACSE)";
	case ASC_REASON_SP_ACSE_PROTOCOLVERSIONNOTSUPPORTED: return "protocol version not supported";
	case ASC_REASON_SP_PRES_TEMPORARYCONGESTION: return "temporary congestion";
	case ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED: return "local limit exceeded";
	default: return "unknown reason";
	}
}

/* Rejected-transient, or a congestion reason whatever the result field says
 * (some acceptors send "permanent" with "local limit exceeded"). */
bool reject_transient(const T_ASC_RejectParameters &rej)
{
	return rej.result == ASC_RESULT_REJECTEDTRANSIENT ||
	       rej.reason == ASC_REASON_SP_PRES_TEMPORARYCONGESTION ||
	       rej.reason == ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED;
}

/* DCMTK 3.6.7 keeps DcmTransportConnection::getSocket() protected; a
 * pointer to that member, formed inside a derived class (which is never
 * instantiated), calls it on the association's connection. */
struct socket_peek : DcmTransportConnection {
	static int fd(DcmTransportConnection *c)
	{
		return (int)(c->*(&socket_peek::getSocket))();
	}
};

int scu_socket(T_ASC_Association *a)
{
	DcmTransportConnection *conn = DUL_getTransportConnection(a->DULassociation);
	if (conn == nullptr)
		return -1;
	return socket_peek::fd(conn);
}

/* Reads TCP_NODELAY back from the socket and sets it when DCMTK did not. */
void check_nodelay(struct bridge_scu *scu)
{
	int fd = scu_socket(scu->assoc);
	int on = 0;
	socklen_t len = sizeof(on);

	if (fd < 0)
		return;
	if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on != 0) {
		scu->info.nodelay_by_dcmtk = true;
		scu->info.nodelay = true;
		return;
	}
	on = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0)
		scu->info.nodelay = true;
}

/* A receiver that leaves Nagle's algorithm on (DCMTK's default: storescp,
 * Orthanc 1.10) writes its C-STORE-RSP in several small segments and holds
 * the later ones until we ACK the first, which Linux delays by ~40 ms once
 * the connection looks interactive. Measured on loopback, 134 CT slices:
 * storescp 6.0 s -> 0.12 s, Orthanc 6.8 s -> 0.6 s. So once the dataset is
 * sent, wait (briefly) for the response to start and ask for an immediate
 * ACK (TCP_QUICKACK leaves the delayed-ACK mode and sends the pending ACK).
 * A peer slower than SCU_QUICKACK_WAIT_MS is not helped, and needs no help. */
void quickack(int fd)
{
	int on = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));
}

void store_progress(void *ctx, T_DIMSE_StoreProgress *progress, T_DIMSE_C_StoreRQ *)
{
	struct bridge_scu *scu = static_cast<struct bridge_scu *>(ctx);
	int fd;

	if (progress->state != DIMSE_StoreEnd)
		return;
	fd = scu_socket(scu->assoc);
	if (fd < 0)
		return;
	quickack(fd);
	struct pollfd pfd = {fd, POLLIN, 0};
	if (poll(&pfd, 1, SCU_QUICKACK_WAIT_MS) == 1)
		quickack(fd);
}

void scu_free(struct bridge_scu *scu)
{
	if (scu->assoc != nullptr)
		ASC_destroyAssociation(&scu->assoc);
	if (scu->net != nullptr)
		ASC_dropNetwork(&scu->net);
	delete scu;
}

/* Ends the association after a failure that leaves it out of step. */
void scu_kill(struct bridge_scu *scu, bool send_abort)
{
	if (scu->alive && send_abort && scu->assoc != nullptr)
		ASC_abortAssociation(scu->assoc);
	else if (scu->assoc != nullptr)
		ASC_dropAssociation(scu->assoc);
	scu->alive = false;
}

bool params_check(struct r3d_err *err, const struct bridge_scu_params *p)
{
	if (p->host == nullptr || p->host[0] == '\0' || strlen(p->host) > SCU_HOST_MAX)
		return r3d_err_set(err, R3D_EINVAL, "invalid peer host");
	if (p->port < 1 || p->port > 65535)
		return r3d_err_set(err, R3D_EINVAL, "invalid peer port %d", p->port);
	if (!ae_valid(p->called_ae))
		return r3d_err_set(err, R3D_EINVAL, "invalid called AE title");
	if (!ae_valid(p->calling_ae))
		return r3d_err_set(err, R3D_EINVAL, "invalid calling AE title");
	if (p->connect_timeout_s < 1 || p->connect_timeout_s > BRIDGE_SCU_MAX_TIMEOUT_S ||
	    p->acse_timeout_s < 1 || p->acse_timeout_s > BRIDGE_SCU_MAX_TIMEOUT_S ||
	    p->dimse_timeout_s < 1 || p->dimse_timeout_s > BRIDGE_SCU_MAX_TIMEOUT_S)
		return r3d_err_set(err, R3D_EINVAL, "timeouts must be 1..%d s",
				   BRIDGE_SCU_MAX_TIMEOUT_S);
	if (p->max_pdu != 0 && (p->max_pdu < ASC_MINIMUMPDUSIZE || p->max_pdu > ASC_MAXIMUMPDUSIZE))
		return r3d_err_set(err, R3D_EINVAL, "max PDU must be 0 or %d..%d", ASC_MINIMUMPDUSIZE,
				   ASC_MAXIMUMPDUSIZE);
	return true;
}

/* Classifies a failed association request. */
bool request_failed(struct r3d_err *err, const struct bridge_scu *scu, OFCondition cond,
		    T_ASC_Parameters *params)
{
	if (cond == DUL_ASSOCIATIONREJECTED) {
		T_ASC_RejectParameters rej;
		memset(&rej, 0, sizeof(rej));
		ASC_getRejectParameters(params, &rej);
		bool transient = reject_transient(rej);
		return r3d_err_set(err, transient ? R3D_ENET : R3D_EREFUSED,
				   "association rejected (%s): %s", transient ? "transient" : "permanent",
				   reject_reason_text(rej));
	}
	if (cond == DUL_READTIMEOUT)
		return r3d_err_set(err, R3D_ENET, "%s: no answer to the association request within %d s",
				   scu->peer, scu->acse_timeout_s);
	return r3d_err_set(err, R3D_ENET, "association request to %s failed: %s", scu->peer,
			   cond_text(cond).c_str());
}

bool scu_open(struct r3d_err *err, const struct bridge_scu_params *p, const char *const *files,
	      size_t nfiles, struct bridge_scu **out)
{
	std::vector<file_meta> metas;
	std::vector<proposal> proposals;
	T_ASC_Parameters *params = nullptr;
	struct bridge_scu *scu = nullptr;
	struct r3d_err first_bad;
	char local_host[256];
	OFCondition cond;

	r3d_err_clear(&first_bad);
	for (size_t i = 0; i < nfiles; i++) {
		file_meta m;
		struct r3d_err e;
		if (read_meta(&e, files[i], &m))
			metas.push_back(m);
		else if (first_bad.code == R3D_OK)
			first_bad = e;
	}
	if (metas.empty()) {
		if (first_bad.code != R3D_OK)
			return r3d_err_set(err, R3D_EIO, "no readable file to send (%s)",
					   first_bad.msg);
		return r3d_err_set(err, R3D_EINVAL, "no file to send");
	}
	build_proposals(metas, &proposals);
	for (size_t i = 0; i < p->nextra_classes; i++)
		propose(&proposals, p->extra_classes[i],
			{UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax});
	if (proposals.size() > BRIDGE_SCU_MAX_CONTEXTS)
		return r3d_err_set(err, R3D_EINVAL,
				   "%zu presentation contexts needed, at most %d per association",
				   proposals.size(), BRIDGE_SCU_MAX_CONTEXTS);

	scu = new (std::nothrow) bridge_scu();
	if (scu == nullptr)
		return r3d_err_set(err, R3D_ENOMEM, "out of memory");
	scu->dimse_timeout_s = p->dimse_timeout_s;
	scu->acse_timeout_s = p->acse_timeout_s;
	snprintf(scu->peer, sizeof(scu->peer), "%s:%d", p->host, p->port);
	scu->info.files_readable = (unsigned)metas.size();
	for (const proposal &pr : proposals) {
		bool seen = false;
		for (const std::string &c : scu->proposed_classes)
			seen = seen || c == pr.abstract;
		if (!seen)
			scu->proposed_classes.push_back(pr.abstract);
		if (pr.syntaxes.size() == 1)
			scu->proposed_exact.push_back(pr.abstract + " " + pr.syntaxes[0]);
	}

	cond = ASC_initializeNetwork(NET_REQUESTOR, 0, p->acse_timeout_s, &scu->net);
	if (cond.bad()) {
		r3d_err_set(err, R3D_EIO, "DICOM network: %s", cond_text(cond).c_str());
		goto fail;
	}
	if (p->tls != nullptr) {
		/* DICOM TLS: the server's certificate is verified against the
		 * trusted CAs; ours is presented when one is given. */
		DcmTLSTransportLayer *layer = r3d_bridge_tls::layer_new(err, NET_REQUESTOR, p->tls);
		if (layer == nullptr)
			goto fail;
		cond = ASC_setTransportLayer(scu->net, layer, 1);
		if (cond.bad()) {
			delete layer;
			r3d_err_set(err, R3D_EIO, "TLS transport layer: %s", cond_text(cond).c_str());
			goto fail;
		}
	}
	cond = ASC_createAssociationParameters(&params, p->max_pdu > 0 ? p->max_pdu : ASC_DEFAULTMAXPDU);
	if (cond.bad()) {
		r3d_err_set(err, R3D_ENOMEM, "association parameters: %s", cond_text(cond).c_str());
		goto fail;
	}
	if (p->tls != nullptr && ASC_setTransportLayerType(params, OFTrue).bad()) {
		r3d_err_set(err, R3D_EIO, "TLS: cannot select the secure transport");
		goto fail;
	}
	ASC_setAPTitles(params, p->calling_ae, p->called_ae, nullptr);
	if (gethostname(local_host, sizeof(local_host)) != 0)
		copy_str(local_host, sizeof(local_host), "localhost");
	local_host[sizeof(local_host) - 1] = '\0';
	ASC_setPresentationAddresses(params, local_host, scu->peer);
	for (size_t i = 0; i < proposals.size(); i++) {
		const char *ts[2];
		int n = 0;
		assert(proposals[i].syntaxes.size() <= 2);
		for (const std::string &s : proposals[i].syntaxes)
			ts[n++] = s.c_str();
		cond = ASC_addPresentationContext(params, (T_ASC_PresentationContextID)(2 * i + 1),
						  proposals[i].abstract.c_str(), ts, n);
		if (cond.bad()) {
			r3d_err_set(err, R3D_EINVAL, "presentation context for %s: %s",
				    proposals[i].abstract.c_str(), cond_text(cond).c_str());
			goto fail;
		}
	}
	scu->info.proposed_contexts = (unsigned)proposals.size();

	dcmConnectionTimeout.set((Sint32)p->connect_timeout_s);
	/* From here the association owns params, even when the request fails. */
	cond = ASC_requestAssociation(scu->net, params, &scu->assoc, nullptr, nullptr, DUL_NOBLOCK,
				      p->acse_timeout_s);
	if (scu->assoc != nullptr)
		params = nullptr;
	if (cond.bad()) {
		request_failed(err, scu, cond, scu->assoc != nullptr ? scu->assoc->params : params);
		goto fail;
	}
	scu->alive = true;
	if (p->tls != nullptr && p->tls->peer_subject != nullptr && p->tls->peer_subject[0] != '\0') {
		/* Pinned: the CA vouching for the server is not enough. */
		char subject[256];
		r3d_bridge_tls::peer_subject(scu->assoc, subject, sizeof(subject));
		if (strcmp(subject, p->tls->peer_subject) != 0) {
			r3d_err_set(err, R3D_EREFUSED, "%s presented a certificate for '%s', not the pinned "
				    "tls_peer_subject '%s'", scu->peer, subject, p->tls->peer_subject);
			ASC_abortAssociation(scu->assoc);
			scu->alive = false;
			goto fail;
		}
	}
	check_nodelay(scu);
	scu->info.accepted_contexts = (unsigned)ASC_countAcceptedPresentationContexts(scu->assoc->params);
	scu->info.peer_max_pdu = (long)scu->assoc->params->theirMaxPDUReceiveSize;
	if (scu->info.accepted_contexts == 0) {
		r3d_err_set(err, R3D_EREFUSED,
			    "%s accepted none of the %u presentation contexts proposed (first: %s)",
			    scu->peer, scu->info.proposed_contexts, proposals[0].abstract.c_str());
		if (ASC_releaseAssociation(scu->assoc).bad())
			ASC_abortAssociation(scu->assoc);
		scu->alive = false;
		goto fail;
	}
	*out = scu;
	return true;
fail:
	if (params != nullptr)
		ASC_destroyAssociationParameters(&params);
	scu_free(scu);
	return false;
}

/* The accepted context to send a file of class cls in syntax ts, or 0.
 * *exact tells whether it carries ts itself. */
T_ASC_PresentationContextID pick_context(T_ASC_Association *a, const char *cls, const char *ts,
					 bool *exact, bool *class_accepted)
{
	T_ASC_PresentationContextID native = 0;
	int n = ASC_countPresentationContexts(a->params);

	*exact = false;
	*class_accepted = false;
	for (int i = 0; i < n; i++) {
		T_ASC_PresentationContext pc;
		if (ASC_getPresentationContext(a->params, i, &pc).bad())
			continue;
		if (pc.resultReason != ASC_P_ACCEPTANCE || strcmp(pc.abstractSyntax, cls) != 0)
			continue;
		*class_accepted = true;
		if (strcmp(pc.acceptedTransferSyntax, ts) == 0) {
			*exact = true;
			return pc.presentationContextID;
		}
		/* Explicit LE first, then whatever native syntax came first. */
		if (ts_native_target(pc.acceptedTransferSyntax) &&
		    (native == 0 ||
		     strcmp(pc.acceptedTransferSyntax, UID_LittleEndianExplicitTransferSyntax) == 0))
			native = pc.presentationContextID;
	}
	return native;
}

const char *ts_name(const char *uid)
{
	const char *name = dcmFindNameOfUID(uid, nullptr);
	return name != nullptr ? name : uid;
}

/* "CTImageStorage (1.2.840.10008.5.1.4.1.1.2)", or the bare UID when DCMTK
 * does not know its name. */
std::string uid_label(const char *uid)
{
	const char *name = dcmFindNameOfUID(uid, nullptr);
	if (name == nullptr)
		return uid;
	return std::string(name) + " (" + uid + ")";
}

bool scu_store(struct r3d_err *err, struct bridge_scu *scu, const char *path,
	       struct bridge_scu_result *res)
{
	DcmFileFormat ff;
	OFString cls, inst, ts_s;
	DcmDataset *detail = nullptr;
	T_DIMSE_C_StoreRQ req;
	T_DIMSE_C_StoreRSP rsp;
	T_ASC_PresentationContext pc;
	bool exact = false, class_accepted = false;

	if (!scu->alive)
		return r3d_err_set(err, R3D_ENET, "association to %s is no longer open", scu->peer);
	OFCondition cond = ff.loadFile(OFFilename(path));
	if (cond.bad())
		return r3d_err_set(err, R3D_EIO, "%s: cannot read: %s", path, cond_text(cond).c_str());
	DcmDataset *ds = ff.getDataset();
	DcmMetaInfo *meta = ff.getMetaInfo();
	if (ds->findAndGetOFString(DCM_SOPClassUID, cls).bad() || cls.empty() ||
	    ds->findAndGetOFString(DCM_SOPInstanceUID, inst).bad() || inst.empty())
		return r3d_err_set(err, R3D_EINVAL, "%s: no SOP Class or SOP Instance UID", path);
	copy_str(res->sop_instance_uid, sizeof(res->sop_instance_uid), inst.c_str());
	if (meta == nullptr || meta->findAndGetOFString(DCM_TransferSyntaxUID, ts_s).bad() ||
	    ts_s.empty())
		ts_s = DcmXfer(ds->getOriginalXfer()).getXferID();
	if (cls.length() > BRIDGE_UID_MAX || inst.length() > BRIDGE_UID_MAX)
		return r3d_err_set(err, R3D_EINVAL, "%s: UID longer than 64 characters", path);

	T_ASC_PresentationContextID pres_id =
		pick_context(scu->assoc, cls.c_str(), ts_s.c_str(), &exact, &class_accepted);
	if (pres_id == 0) {
		bool proposed = false;
		for (const std::string &c : scu->proposed_classes)
			proposed = proposed || c == cls.c_str();
		if (!proposed)
			return r3d_err_set(err, R3D_EINVAL,
					   "%s: SOP class %s was not proposed on this association",
					   path, cls.c_str());
		if (!class_accepted)
			return r3d_err_set(err, R3D_EREFUSED, "SOP class %s not accepted by %s",
					   uid_label(cls.c_str()).c_str(), scu->peer);
		return r3d_err_set(err, R3D_EREFUSED,
				   "transfer syntax %s not accepted by %s for %s and no uncompressed "
				   "context to convert to", ts_name(ts_s.c_str()), scu->peer,
				   ts_name(cls.c_str()));
	}
	ASC_findAcceptedPresentationContext(scu->assoc->params, pres_id, &pc);
	copy_str(res->transfer_syntax, sizeof(res->transfer_syntax), pc.acceptedTransferSyntax);
	if (!exact) {
		E_TransferSyntax target = DcmXfer(pc.acceptedTransferSyntax).getXfer();
		cond = ds->chooseRepresentation(target, nullptr);
		if (cond.bad() || !ds->canWriteXfer(target, ds->getOriginalXfer())) {
			/* Undecodable (JPEG 2000 here) or damaged: the peer will
			 * not take the file's own syntax, so retrying cannot help. */
			return r3d_err_set(err, R3D_EREFUSED,
					   "transfer syntax %s not accepted by %s and the dataset "
					   "cannot be converted to %s", ts_name(ts_s.c_str()),
					   scu->peer, ts_name(pc.acceptedTransferSyntax));
		}
		res->converted = true;
	}

	memset(&req, 0, sizeof(req));
	memset(&rsp, 0, sizeof(rsp));
	req.MessageID = scu->assoc->nextMsgID++;
	copy_str(req.AffectedSOPClassUID, sizeof(req.AffectedSOPClassUID), cls.c_str());
	copy_str(req.AffectedSOPInstanceUID, sizeof(req.AffectedSOPInstanceUID), inst.c_str());
	req.DataSetType = DIMSE_DATASET_PRESENT;
	req.Priority = DIMSE_PRIORITY_MEDIUM;
	cond = DIMSE_storeUser(scu->assoc, pres_id, &req, nullptr, ds, store_progress, scu,
			       DIMSE_NONBLOCKING, scu->dimse_timeout_s, &rsp, &detail, nullptr, 0);
	if (cond.bad()) {
		delete detail;
		if (cond == DIMSE_NODATAAVAILABLE) {
			scu_kill(scu, true);
			return r3d_err_set(err, R3D_ENET, "no C-STORE response from %s within %d s",
					   scu->peer, scu->dimse_timeout_s);
		}
		if (cond == DUL_PEERABORTEDASSOCIATION) {
			scu_kill(scu, false);
			return r3d_err_set(err, R3D_ENET, "%s aborted the association", scu->peer);
		}
		if (cond == DUL_PEERREQUESTEDRELEASE) {
			scu_kill(scu, true);
			return r3d_err_set(err, R3D_ENET, "%s released the association during C-STORE",
					   scu->peer);
		}
		scu_kill(scu, true);
		return r3d_err_set(err, R3D_ENET, "C-STORE to %s failed: %s", scu->peer,
				   cond_text(cond).c_str());
	}
	res->responded = true;
	res->status = rsp.DimseStatus;
	if (detail != nullptr) {
		OFString comment;
		if (detail->findAndGetOFString(DCM_ErrorComment, comment).good())
			copy_str(res->error_comment, sizeof(res->error_comment), comment.c_str());
		/* The peer's text goes into one-line reasons and logs. */
		for (char *c = res->error_comment; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
				*c = ' ';
		delete detail;
	}
	switch (bridge_store_status_kind(rsp.DimseStatus)) {
	case BRIDGE_STORE_SUCCESS:
	case BRIDGE_STORE_WARNING:
		return true;
	case BRIDGE_STORE_TRANSIENT:
		return r3d_err_set(err, R3D_ENET, "status 0x%04x (%s)%s%s", rsp.DimseStatus,
				   bridge_store_status_text(rsp.DimseStatus),
				   res->error_comment[0] != '\0' ? ": " : "", res->error_comment);
	default:
		return r3d_err_set(err, R3D_EREFUSED, "status 0x%04x (%s)%s%s", rsp.DimseStatus,
				   bridge_store_status_text(rsp.DimseStatus),
				   res->error_comment[0] != '\0' ? ": " : "", res->error_comment);
	}
}

} // namespace

extern "C" bool bridge_scu_open(struct r3d_err *err, const struct bridge_scu_params *p,
				const char *const *files, size_t nfiles, struct bridge_scu **out)
{
	*out = nullptr;
	if (!params_check(err, p))
		return false;
	try {
		return scu_open(err, p, files, nfiles, out);
	} catch (...) {
		return r3d_err_set(err, R3D_EIO, "unexpected error while opening an association");
	}
}

extern "C" void bridge_scu_get_info(const struct bridge_scu *scu, struct bridge_scu_info *info)
{
	*info = scu->info;
}

extern "C" bool bridge_scu_store(struct r3d_err *err, struct bridge_scu *scu, const char *path,
				 struct bridge_scu_result *res)
{
	memset(res, 0, sizeof(*res));
	try {
		return scu_store(err, scu, path, res);
	} catch (...) {
		/* The association may be half-way through a message. */
		try {
			scu_kill(scu, true);
		} catch (...) {
			scu->alive = false;
		}
		return r3d_err_set(err, R3D_ENET, "unexpected error while sending %s", path);
	}
}

extern "C" bool bridge_scu_proposes(const struct bridge_scu *scu, const char *path)
{
	try {
		file_meta m;
		struct r3d_err e;
		bool cls = false, exact = false;
		if (!read_meta(&e, path, &m))
			return true;   /* unreadable: bridge_scu_store() says so */
		for (const std::string &c : scu->proposed_classes)
			cls = cls || c == m.sop_class;
		for (const std::string &c : scu->proposed_exact)
			exact = exact || c == m.sop_class + " " + m.ts;
		return cls && (exact || ts_uncompressed(m.ts.c_str()) || ts_decodable(m.ts.c_str()));
	} catch (...) {
		return false;
	}
}

extern "C" bool bridge_scu_alive(const struct bridge_scu *scu)
{
	return scu->alive;
}

extern "C" bool bridge_scu_release(struct r3d_err *err, struct bridge_scu *scu)
{
	bool ok = true;

	if (scu == nullptr)
		return true;
	try {
		if (scu->alive) {
			OFCondition cond = ASC_releaseAssociation(scu->assoc);
			if (cond.bad()) {
				r3d_err_set(err, R3D_ENET, "release of the association to %s: %s",
					    scu->peer, cond_text(cond).c_str());
				ASC_abortAssociation(scu->assoc);
				ok = false;
			}
			scu->alive = false;
		}
		scu_free(scu);
	} catch (...) {
		return r3d_err_set(err, R3D_ENET, "unexpected error while releasing an association");
	}
	return ok;
}

extern "C" void bridge_scu_abort(struct bridge_scu *scu)
{
	if (scu == nullptr)
		return;
	try {
		scu_kill(scu, true);
		scu_free(scu);
	} catch (...) {
	}
}

extern "C" enum bridge_store_kind bridge_store_status_kind(uint16_t status)
{
	if (status == 0x0000)
		return BRIDGE_STORE_SUCCESS;
	if (status == 0x0001 || status == 0x0107 || status == 0x0116 ||
	    (status >= 0xB000 && status <= 0xBFFF))
		return BRIDGE_STORE_WARNING;
	if ((status >= 0xA700 && status <= 0xA7FF) || status == 0x0213)
		return BRIDGE_STORE_TRANSIENT;
	return BRIDGE_STORE_PERMANENT;
}

extern "C" const char *bridge_store_status_text(uint16_t status)
{
	switch (status) {
	case 0x0000: return "Success";
	case 0x0001: return "Warning: requested optional attributes not supported";
	case 0x0107: return "Warning: attribute list error";
	case 0x0116: return "Warning: attribute value out of range";
	case 0xB000: return "Warning: coercion of data elements";
	case 0xB006: return "Warning: elements discarded";
	case 0xB007: return "Warning: data set does not match SOP class";
	case 0x0110: return "Processing failure";
	case 0x0117: return "Invalid object instance";
	case 0x0122: return "SOP class not supported";
	case 0x0124: return "Not authorized";
	case 0x0210: return "Duplicate invocation";
	case 0x0211: return "Unrecognized operation";
	case 0x0212: return "Mistyped argument";
	case 0x0213: return "Resource limitation";
	case 0xFE00: return "Cancel";
	default: break;
	}
	if (status >= 0xA700 && status <= 0xA7FF)
		return "Out of Resources";
	if (status >= 0xA900 && status <= 0xA9FF)
		return "Data Set does not match SOP Class";
	if (status >= 0xC000 && status <= 0xCFFF)
		return "Cannot understand";
	if (status >= 0xB000 && status <= 0xBFFF)
		return "Warning";
	if (status == 0xFF00 || status == 0xFF01)
		return "Pending (not valid for C-STORE)";
	return "Failure";
}
