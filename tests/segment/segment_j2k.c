/*
 * segment_j2k.c: test helper that decodes one JPEG 2000 codestream (J2K or
 * JP2 file) with OpenJPEG and writes its first component as raw little-endian
 * 16-bit samples. Only for segment_real.py, which reads the JPEG 2000 series
 * example_ct_dicom without the project's DICOM reader (being written
 * elsewhere). Single-threaded.
 *
 *   segment_j2k IN.j2k OUT.raw      prints "WIDTH HEIGHT PRECISION SIGNED"
 */
#include <stdio.h>
#include <string.h>

#include <openjpeg.h>

int main(int argc, char **argv)
{
	opj_dparameters_t params;
	opj_codec_t *codec = NULL;
	opj_stream_t *stream = NULL;
	opj_image_t *image = NULL;
	unsigned char magic[12] = { 0 };
	FILE *f = NULL;
	size_t i, n;
	int rc = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: %s IN.j2k OUT.raw\n", argv[0]);
		goto out;
	}
	f = fopen(argv[1], "rb");
	if (f == NULL || fread(magic, 1, sizeof(magic), f) < 4) {
		fprintf(stderr, "segment_j2k: cannot read %s\n", argv[1]);
		goto out;
	}
	fclose(f);
	f = NULL;
	/* A JP2 file starts with a signature box, a codestream with SOC FF4F. */
	codec = opj_create_decompress(magic[0] == 0xff && magic[1] == 0x4f ? OPJ_CODEC_J2K
									   : OPJ_CODEC_JP2);
	opj_set_default_decoder_parameters(&params);
	stream = opj_stream_create_default_file_stream(argv[1], OPJ_TRUE);
	if (codec == NULL || stream == NULL || !opj_setup_decoder(codec, &params) ||
	    !opj_read_header(stream, codec, &image) || !opj_decode(codec, stream, image) ||
	    !opj_end_decompress(codec, stream) || image->numcomps < 1) {
		fprintf(stderr, "segment_j2k: cannot decode %s\n", argv[1]);
		goto out;
	}
	n = (size_t)image->comps[0].w * image->comps[0].h;
	f = fopen(argv[2], "wb");
	if (f == NULL) {
		fprintf(stderr, "segment_j2k: cannot write %s\n", argv[2]);
		goto out;
	}
	for (i = 0; i < n; i++) {
		unsigned v = (unsigned)image->comps[0].data[i];
		unsigned char b[2] = { (unsigned char)(v & 0xff), (unsigned char)((v >> 8) & 0xff) };

		if (fwrite(b, 1, 2, f) != 2) {
			fprintf(stderr, "segment_j2k: cannot write %s\n", argv[2]);
			goto out;
		}
	}
	if (fclose(f) != 0) {
		f = NULL;
		fprintf(stderr, "segment_j2k: cannot write %s\n", argv[2]);
		goto out;
	}
	f = NULL;
	printf("%u %u %u %u\n", image->comps[0].w, image->comps[0].h, image->comps[0].prec,
	       image->comps[0].sgnd);
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	opj_image_destroy(image);
	opj_stream_destroy(stream);
	opj_destroy_codec(codec);
	return rc;
}
