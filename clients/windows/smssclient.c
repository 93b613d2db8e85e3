/*
 * SMSSClient -- hand SMS records to smss servers and wait until each is stored.
 *
 * The Windows client for scheduled tasks (SMSSClient.exe) and, from the same
 * source, a native POSIX build.  It follows the contract of smss-client
 * (clients/smss_client.py): same options, same wire protocol, same failover,
 * same exit status.  It needs only the system DLLs (kernel32, ws2_32,
 * shell32, msvcrt).
 *
 *   SMSSClient.exe -a 192.168.1.1 #420608337726;Zprava
 *   SMSSClient.exe -a 192.168.1.1,192.168.1.2 -n +420608337726 -m "Záloha selhala"
 *
 * Failover: the servers of -a (HOST, HOST:PORT, [IPv6]:PORT, comma separated)
 * are tried in order.  The payload is split into the units the server answers
 * (record_spans: one reply per record, one per run of junk).  A unit answered
 * "OK <id>" is done, and so is one answered with any other ERR than ERR 503
 * (final).  A unit answered ERR 503 or not answered at all (no connection, no
 * reply within -t, connection lost, a peer that is not an smss server) goes to
 * the next server with the other open units.  After the last server, -r more
 * rounds over the list follow, 0.5 s apart, doubling.  A unit sent but not
 * answered may have been committed: sending it again can store it twice (an
 * alert twice beats an alert lost; the HTTP API's Idempotency-Key is the way
 * to exactly once).
 *
 * Exit status: 0 every record was acknowledged "OK <id>" (by whichever
 * server); 1 anything else; 2 bad usage.
 *
 * On Windows the arguments are taken as UTF-16 (wmain, -municode) and turned
 * into UTF-8, so text typed on a Czech Windows arrives intact.
 */

#ifdef _WIN32
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600
#endif
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <fcntl.h>
#include <io.h>
typedef SOCKET sock_t;
#define BAD_SOCKET INVALID_SOCKET
#define close_socket closesocket
#define SHUT_WR SD_SEND
typedef int io_len; /* length argument of send/recv and connect */
#else
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
typedef int sock_t;
typedef size_t io_len;
#define BAD_SOCKET (-1)
#define close_socket close
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "SMSSClient"
#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 2021
#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_RETRIES 3
#define FIRST_BACKOFF 0.5 /* seconds before the first retry; doubles after each */
#define MAX_REPLY_LINE 65536
#define MAX_SECONDS 86400 /* the longest -t */
#define MAX_RETRIES 1000
#define MAX_SERVER_LABEL 300
#define EXIT_FAIL 1
#define EXIT_USAGE 2

static int quiet;

/* ---------------------------------------------------------------- helpers */

struct buf {
    char *data;
    size_t len, cap;
};

static void die_memory(void)
{
    fprintf(stderr, PROG ": out of memory\n");
    exit(EXIT_FAIL);
}

static void buf_add(struct buf *b, const char *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data)
            die_memory();
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " -h' for help.\n");
    exit(EXIT_USAGE);
}

static void help(void)
{
    printf(
        "usage: " PROG " [-a HOST[,HOST...]] [-p PORT] [-t SECONDS] [-r RETRIES] [-q] #PHONE;TEXT[#PHONE;TEXT...]\n"
        "       " PROG " [options] -n PHONE [-n PHONE...] -m TEXT\n"
        "       " PROG " [options] -n PHONE [-n PHONE...] [-m -] < file\n"
        "\n"
        "Hand SMS messages to an smss server (TCP, port 2021) and wait until each one\n"
        "is stored. Records '#PHONE;TEXT' are sent as is (several arguments are joined\n"
        "by spaces; escape '#', ';' and '\\' in the text as \\#, \\; and \\\\). With -n\n"
        "and -m (or the text on stdin, UTF-8) the text is escaped for you.\n"
        "\n"
        "options:\n"
        "  -a, --host HOST,...   servers to try in order: HOST, HOST:PORT or [IPv6]:PORT\n"
        "                        (default $SMSS_HOST, else " DEFAULT_HOST ")\n"
        "  -p, --port PORT       port of the servers given without one ($SMSS_PORT, 2021)\n"
        "  -t, --timeout SECONDS wait for each connection, and then for its replies (30)\n"
        "  -r, --retries N       rounds over the servers to repeat, backoff 0.5 s doubling (3)\n"
        "  -n, --number PHONE    recipient; repeat for several recipients of one text\n"
        "  -m, --message TEXT    message text for -n; '-' reads it from stdin\n"
        "  -q, --quiet           print nothing on success\n"
        "  -h, --help            this help\n"
        "\n"
        "output: one line 'OK <id>' on stdout per record stored, in record order;\n"
        "failures on stderr, and after a failover which server stored which records.\n"
        "exit status: 0 every record acknowledged OK; 1 anything else (no server took\n"
        "it, ERR, no reply); 2 bad usage.\n"
        "several servers: a record answered ERR 503 or not answered (no connection, no\n"
        "reply within -t, connection lost) goes to the next server; other ERR replies\n"
        "are final. A record sent but not answered may have been stored: the next\n"
        "server can store it a second time.\n");
}

static double now(void)
{
#ifdef _WIN32
    return (double)GetTickCount64() / 1000.0;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
#endif
}

static void sleep_seconds(double seconds)
{
#ifdef _WIN32
    Sleep((DWORD)(seconds * 1000.0));
#else
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
#endif
}

static int last_socket_error(void)
{
#ifdef _WIN32
    return WSAGetLastError();
#else
    return errno;
#endif
}

static const char *socket_error_text(int code)
{
#ifdef _WIN32
    static char other[48];
    switch (code) {
    case WSAECONNREFUSED: return "Connection refused";
    case WSAETIMEDOUT: return "Connection timed out";
    case WSAECONNRESET: return "Connection reset by peer";
    case WSAECONNABORTED: return "Connection aborted";
    case WSAEHOSTUNREACH: return "No route to host";
    case WSAENETUNREACH: return "Network is unreachable";
    case WSAENETDOWN: return "Network is down";
    case WSAEADDRNOTAVAIL: return "Address not available";
    }
    snprintf(other, sizeof other, "Winsock error %d", code);
    return other;
#else
    return strerror(code);
#endif
}

/* ------------------------------------------------------- the protocol */

/* Append text escaped for a record: \ # ; LF CR. */
static void escape_text(struct buf *out, const char *text, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        switch (text[i]) {
        case '\\': buf_adds(out, "\\\\"); break;
        case '#': buf_adds(out, "\\#"); break;
        case ';': buf_adds(out, "\\;"); break;
        case '\n': buf_adds(out, "\\n"); break;
        case '\r': buf_adds(out, "\\r"); break;
        default: buf_add(out, text + i, 1);
        }
    }
}

/* The units the server answers in the payload, as byte spans, read as the
 * server reads it (smss/spooler/protocol.py): a record starts at '#' and ends
 * at the next unescaped '#', at CR/LF or at the end; in TEXT '\' escapes the
 * next byte (not a line end).  "#PHONE;TEXT" and "#PHONE" without ';' get one
 * reply each; blanks between records and an empty '#' get none; other bytes
 * outside a record get one error reply per run up to the next '#' or line end.
 * A span runs from the unit's first byte to its end, without the byte that
 * ended it: sent alone, or joined to others by LF, it is the same unit again. */
enum { OUTSIDE, JUNK, PHONE, TEXT };

struct unit {
    size_t start, end; /* the span in the payload */
    char *reply;       /* the last reply line it got, or NULL */
    int server;        /* index of the server that gave it, or -1 */
    int sent;          /* its bytes went out to some server */
};

static void add_unit(struct unit **units, size_t *n, size_t *cap, size_t start, size_t end)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *units = realloc(*units, *cap * sizeof **units);
        if (!*units)
            die_memory();
    }
    (*units)[*n].start = start;
    (*units)[*n].end = end;
    (*units)[*n].reply = NULL;
    (*units)[*n].server = -1;
    (*units)[*n].sent = 0;
    (*n)++;
}

static size_t record_spans(const char *payload, size_t len, struct unit **units)
{
    size_t i, n = 0, cap = 0, start = 0;
    int state = OUTSIDE, phone_seen = 0, escaped = 0;
    *units = NULL;
    for (i = 0; i < len; i++) {
        char c = payload[i];
        int eol = c == '\r' || c == '\n';
        if (state == TEXT) {
            if (escaped) {
                escaped = 0;
                if (eol) {
                    add_unit(units, &n, &cap, start, i);
                    state = OUTSIDE;
                }
            } else if (c == '\\')
                escaped = 1;
            else if (c == '#' || eol) {
                add_unit(units, &n, &cap, start, i);
                state = c == '#' ? PHONE : OUTSIDE;
                start = i;
                phone_seen = 0;
            }
        } else if (state == PHONE) {
            if (c == ';') {
                state = TEXT;
                escaped = 0;
            } else if (c == '#' || eol) {
                if (phone_seen)
                    add_unit(units, &n, &cap, start, i);
                state = c == '#' ? PHONE : OUTSIDE;
                start = i;
                phone_seen = 0;
            } else if (c == '\0' || !strchr(" \t\v\f", c))
                phone_seen = 1;
        } else if (c == '#' || eol) {
            if (state == JUNK)
                add_unit(units, &n, &cap, start, i);
            state = c == '#' ? PHONE : OUTSIDE;
            start = i;
            phone_seen = 0;
        } else if (state == OUTSIDE && c != ' ' && c != '\t' && c != '\0') {
            state = JUNK; /* junk before a record: one error reply */
            start = i;
        }
    }
    if (state == TEXT || state == JUNK || (state == PHONE && phone_seen))
        add_unit(units, &n, &cap, start, len);
    return n;
}

/* The bytes that carry the open units and nothing else: every unit, the
 * payload as it is; some, their spans joined by LF (which ends a record
 * without changing it). */
static void resend_payload(struct buf *out, const char *payload, size_t len,
                           const struct unit *units, size_t count, const size_t *open, size_t nopen)
{
    size_t j;
    out->len = 0;
    if (nopen == count) {
        buf_add(out, payload, len);
        return;
    }
    for (j = 0; j < nopen; j++) {
        const struct unit *u = &units[open[j]];
        if (j)
            buf_adds(out, "\n");
        buf_add(out, payload + u->start, u->end - u->start);
    }
}

/* Record numbers for people: "record 2", "records 1-3, 5". */
static void describe(struct buf *out, const size_t *indexes, size_t n)
{
    size_t j = 0;
    char number[64];
    out->len = 0;
    buf_adds(out, n == 1 ? "record " : "records ");
    while (j < n) {
        size_t run = j;
        while (run + 1 < n && indexes[run + 1] == indexes[run] + 1)
            run++;
        if (run == j)
            snprintf(number, sizeof number, "%s%lu", j ? ", " : "", (unsigned long)indexes[j] + 1);
        else
            snprintf(number, sizeof number, "%s%lu-%lu", j ? ", " : "",
                     (unsigned long)indexes[j] + 1, (unsigned long)indexes[run] + 1);
        buf_adds(out, number);
        j = run + 1;
    }
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 with *bad set to
 * the length of the maximal invalid subpart (at least 1). */
static size_t utf8_sequence(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need, i;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

static int utf8_valid(const char *s, size_t n)
{
    size_t i = 0, bad;
    while (i < n) {
        size_t step = utf8_sequence((const unsigned char *)s + i, n - i, &bad);
        if (!step)
            return 0;
        i += step;
    }
    return 1;
}

/* Text read from stdin, as UTF-8: invalid bytes become U+FFFD (on Windows the
 * whole text is taken to be in the ANSI code page instead, e.g. cp1250). */
static void text_to_utf8(struct buf *out, const char *s, size_t n)
{
    size_t i = 0, bad;
    if (utf8_valid(s, n)) {
        buf_add(out, s, n);
        return;
    }
#ifdef _WIN32
    if (n < 0x7fffffff) {
        int wide = MultiByteToWideChar(CP_ACP, 0, s, (int)n, NULL, 0);
        if (wide > 0) {
            wchar_t *w = malloc(sizeof(wchar_t) * (size_t)wide);
            int bytes;
            char *u;
            if (!w)
                die_memory();
            MultiByteToWideChar(CP_ACP, 0, s, (int)n, w, wide);
            bytes = WideCharToMultiByte(CP_UTF8, 0, w, wide, NULL, 0, NULL, NULL);
            u = malloc((size_t)bytes + 1);
            if (!u)
                die_memory();
            WideCharToMultiByte(CP_UTF8, 0, w, wide, u, bytes, NULL, NULL);
            buf_add(out, u, (size_t)bytes);
            free(u);
            free(w);
            return;
        }
    }
#endif
    while (i < n) {
        size_t step = utf8_sequence((const unsigned char *)s + i, n - i, &bad);
        if (step) {
            buf_add(out, s + i, step);
            i += step;
        } else {
            buf_adds(out, "\xEF\xBF\xBD");
            i += bad;
        }
    }
}

static void read_stdin_text(struct buf *text)
{
    struct buf raw = {0};
    char chunk[4096];
    size_t got, start = 0;
#ifdef _WIN32
    _setmode(_fileno(stdin), _O_BINARY);
#endif
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        buf_add(&raw, chunk, got);
    if (raw.len >= 3 && memcmp(raw.data, "\xEF\xBB\xBF", 3) == 0)
        start = 3;
    while (raw.len > start && (raw.data[raw.len - 1] == '\n' || raw.data[raw.len - 1] == '\r'))
        raw.len--;
    if (raw.len > start)
        text_to_utf8(text, raw.data + start, raw.len - start);
    free(raw.data);
}

static int stdin_is_tty(void)
{
#ifdef _WIN32
    return _isatty(_fileno(stdin));
#else
    return isatty(fileno(stdin));
#endif
}

/* ---------------------------------------------------------- the network */

static int set_nonblocking(sock_t s)
{
#ifdef _WIN32
    u_long on = 1;
    return ioctlsocket(s, FIONBIO, &on) == 0 ? 0 : -1;
#else
    int flags = fcntl(s, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl(s, F_SETFL, flags | O_NONBLOCK);
#endif
}

static int in_progress(int code)
{
#ifdef _WIN32
    return code == WSAEWOULDBLOCK || code == WSAEINPROGRESS;
#else
    return code == EINPROGRESS || code == EINTR;
#endif
}

static int would_block(int code)
{
#ifdef _WIN32
    return code == WSAEWOULDBLOCK;
#else
    return code == EAGAIN || code == EWOULDBLOCK || code == EINTR;
#endif
}

/* Wait until s is readable (want_write 0) or writable; 1 ready, 0 timeout, -1 error. */
static int wait_socket(sock_t s, int want_write, double deadline)
{
    for (;;) {
        fd_set ready, failed;
        struct timeval tv;
        double left = deadline - now();
        int r;
        if (left <= 0)
            return 0;
        tv.tv_sec = (long)left;
        tv.tv_usec = (long)((left - (double)tv.tv_sec) * 1e6);
        FD_ZERO(&ready);
        FD_ZERO(&failed);
        FD_SET(s, &ready);
        FD_SET(s, &failed);
        r = select((int)s + 1, want_write ? NULL : &ready, want_write ? &ready : NULL, &failed, &tv);
        if (r > 0)
            return 1;
        if (r < 0 && !would_block(last_socket_error()))
            return -1;
    }
}

/* One connection attempt to every address of host; BAD_SOCKET with why set. */
static sock_t connect_once(const char *host, int port, const char *label, double timeout,
                           char *why, size_t whylen)
{
    struct addrinfo hints, *list = NULL, *ai;
    char service[16];
    double deadline = now() + timeout;
    int rc, code = 0, timed_out = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%d", port);
    rc = getaddrinfo(host, service, &hints, &list);
    if (rc != 0) {
#ifdef _WIN32
        snprintf(why, whylen, "cannot connect to %s: unknown host (error %d)", label, rc);
#else
        snprintf(why, whylen, "cannot connect to %s: %s", label, gai_strerror(rc));
#endif
        return BAD_SOCKET;
    }
    for (ai = list; ai; ai = ai->ai_next) {
        sock_t s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        int err = 0, r;
        socklen_t errlen = sizeof err;
        if (s == BAD_SOCKET) {
            code = last_socket_error();
            continue;
        }
        if (set_nonblocking(s) != 0 || (connect(s, ai->ai_addr, (socklen_t)ai->ai_addrlen) != 0 &&
                                        !in_progress(last_socket_error()))) {
            code = last_socket_error();
            close_socket(s);
            continue;
        }
        r = wait_socket(s, 1, deadline);
        if (r == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&err, &errlen) == 0 && err == 0) {
            freeaddrinfo(list);
            return s;
        }
        if (r == 0)
            timed_out = 1;
        else
            code = err ? err : last_socket_error();
        close_socket(s);
        if (timed_out)
            break;
    }
    freeaddrinfo(list);
    if (timed_out)
        snprintf(why, whylen, "cannot connect to %s: timed out after %g s", label, timeout);
    else
        snprintf(why, whylen, "cannot connect to %s: %s", label, socket_error_text(code));
    return BAD_SOCKET;
}

/* Check one reply line; 1 "OK <id>...", 0 "ERR <code>...", -1 not a reply at all. */
static int parse_reply(const char *line)
{
    if (strncmp(line, "OK ", 3) == 0 && line[3] && line[3] != ' ')
        return 1;
    if (strncmp(line, "ERR ", 4) == 0 && line[4] && line[4] != ' ')
        return 0;
    return -1;
}

/* A final reply: anything but ERR 503, which sends the record to the next server. */
static int reply_final(const char *line)
{
    return !(strncmp(line, "ERR 503", 7) == 0 && (line[7] == '\0' || line[7] == ' '));
}

static int only_blanks(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static char *copy_string(const char *s)
{
    char *copy = malloc(strlen(s) + 1);
    if (!copy)
        die_memory();
    strcpy(copy, s);
    return copy;
}

/* Send the body, half-close, read up to expected reply lines into replies[]
 * (each malloc'd).  Returns how many came; when fewer, problem says why
 * (timeout, connection closed or lost, also while sending, not a reply). */
static size_t exchange(sock_t s, const char *body, size_t len, size_t expected, double timeout,
                       char **replies, char *problem, size_t problemlen)
{
    double deadline = now() + timeout;
    size_t sent = 0, got = 0;
    struct buf in = {0};
    int eof = 0;

    *problem = '\0';
    while (sent < len) {
        int r = wait_socket(s, 1, deadline), n;
        if (r == 0) {
            snprintf(problem, problemlen, "timed out after %g s while sending", timeout);
            return 0;
        }
        n = r < 0 ? -1 : (int)send(s, body + sent, (io_len)(len - sent > 65536 ? 65536 : len - sent), 0);
        if (n < 0 && r > 0 && would_block(last_socket_error()))
            continue;
        if (n <= 0) {
            /* A server that refuses (ERR 403, ERR 503) hangs up at once: read its reason. */
            snprintf(problem, problemlen, "connection lost while sending: %s",
                     socket_error_text(last_socket_error()));
            break;
        }
        sent += (size_t)n;
    }
    /* The end of the stream ends the last record, as with nc -N.  If the server
     * already hung up this fails, and what it said may still be readable. */
    shutdown(s, SHUT_WR);

    while (got < expected) {
        char *newline = in.len ? memchr(in.data, '\n', in.len) : NULL;
        char chunk[4096];
        int r, n;
        if (newline || (eof && !only_blanks(in.data, in.len))) {
            /* one whole line, or the unterminated last one before the end */
            size_t linelen = newline ? (size_t)(newline - in.data) : in.len;
            size_t used = newline ? linelen + 1 : in.len;
            if (linelen && in.data[linelen - 1] == '\r')
                linelen--;
            in.data[linelen] = '\0';
            if (parse_reply(in.data) < 0) {
                snprintf(problem, problemlen, "unexpected reply from the server: '%.200s'", in.data);
                break;
            }
            replies[got++] = copy_string(in.data);
            memmove(in.data, in.data + used, in.len - used);
            in.len -= used;
            continue;
        }
        if (eof) {
            if (!*problem)
                snprintf(problem, problemlen, "the server closed the connection");
            break;
        }
        if (in.len > MAX_REPLY_LINE) {
            snprintf(problem, problemlen, "reply line too long: this is not an smss server");
            break;
        }
        r = wait_socket(s, 0, deadline);
        if (r == 0) {
            if (!*problem)
                snprintf(problem, problemlen, "timed out after %g s waiting for the server", timeout);
            break;
        }
        n = r < 0 ? -1 : (int)recv(s, chunk, sizeof chunk, 0);
        if (n < 0 && r > 0 && would_block(last_socket_error()))
            continue;
        if (n < 0) {
            if (!*problem)
                snprintf(problem, problemlen, "connection lost: %s",
                         socket_error_text(last_socket_error()));
            break;
        }
        if (n == 0)
            eof = 1;
        else
            buf_add(&in, chunk, (size_t)n);
    }
    free(in.data);
    if (got >= expected)
        *problem = '\0';
    return got;
}

/* ------------------------------------------------------------- failover */

struct server {
    char *entry; /* the allocation host points into */
    char *host;
    int port;
    char label[MAX_SERVER_LABEL]; /* host:port, an IPv6 address in brackets */
};

/* Hand every unit to the first server that gives it a final reply: each round
 * tries the servers in order with the units still open (never answered, or
 * answered ERR 503); an unreachable server costs no wait.  After a round that
 * left units open, retries more rounds follow, 0.5 s apart, doubling.  Each
 * thing that goes wrong is said on stderr.  Returns the servers contacted. */
static size_t deliver(const char *payload, size_t len, struct unit *units, size_t count,
                      const struct server *servers, size_t nservers, double timeout, long retries)
{
    size_t *open = malloc(count * sizeof *open), nopen = count, tries = 0, j;
    char **replies = calloc(count, sizeof *replies);
    struct buf body = {0}, names = {0};
    double delay = FIRST_BACKOFF;
    long round;

    if (!open || !replies)
        die_memory();
    for (j = 0; j < count; j++)
        open[j] = j;
    for (round = 0; round <= retries && nopen; round++) {
        size_t k;
        if (round) {
            describe(&names, open, nopen);
            fprintf(stderr, PROG ": %s not taken by any server; retrying in %g s\n", names.data, delay);
            fflush(stderr);
            sleep_seconds(delay);
            delay *= 2;
        }
        for (k = 0; k < nservers && nopen; k++) {
            const struct server *server = &servers[k];
            char why[512], problem[512];
            size_t got, still = 0;
            sock_t s;
            tries++;
            s = connect_once(server->host, server->port, server->label, timeout, why, sizeof why);
            if (s == BAD_SOCKET) {
                fprintf(stderr, PROG ": %s\n", why);
                continue;
            }
            resend_payload(&body, payload, len, units, count, open, nopen);
            got = exchange(s, body.data, body.len, nopen, timeout, replies, problem, sizeof problem);
            close_socket(s);
            for (j = 0; j < got; j++) {
                struct unit *u = &units[open[j]];
                free(u->reply);
                u->reply = replies[j];
                replies[j] = NULL;
                u->server = (int)k;
                if (!reply_final(u->reply)) {
                    fprintf(stderr, PROG ": %s: record %lu: %s\n", server->label,
                            (unsigned long)open[j] + 1, u->reply);
                    open[still++] = open[j];
                }
            }
            for (j = 0; j < nopen; j++)
                units[open[j]].sent = 1;
            if (got < nopen) {
                fprintf(stderr, PROG ": %s: %s after %lu of %lu replies\n", server->label, problem,
                        (unsigned long)got, (unsigned long)nopen);
                for (j = got; j < nopen; j++)
                    open[still++] = open[j];
            }
            nopen = still;
            fflush(stderr);
        }
    }
    free(open);
    free(replies);
    free(body.data);
    free(names.data);
    return tries;
}

/* stdout: "OK <id>" per record stored, in record order; stderr: who stored
 * what (after a failover) and what failed.  The exit status. */
static int report(const struct unit *units, size_t count, const struct server *servers,
                  size_t tries)
{
    size_t i, j, n;
    size_t *list = malloc(count * sizeof *list);
    char *done = calloc(count, 1);
    struct buf names = {0};
    int failed = 0;

    if (!list || !done)
        die_memory();
    for (i = 0; i < count; i++) {
        if (units[i].reply && parse_reply(units[i].reply) == 1) {
            if (!quiet)
                printf("%s\n", units[i].reply);
        } else
            failed = 1;
    }
    fflush(stdout);
    for (i = 0; tries > 1 && i < count; i++) {
        const char *label;
        if (done[i] || !units[i].reply || parse_reply(units[i].reply) != 1)
            continue;
        label = servers[units[i].server].label;
        for (j = i, n = 0; j < count; j++)
            if (units[j].reply && parse_reply(units[j].reply) == 1 &&
                strcmp(servers[units[j].server].label, label) == 0) {
                done[j] = 1;
                list[n++] = j;
            }
        describe(&names, list, n);
        fprintf(stderr, PROG ": %s stored %s\n", label, names.data);
    }
    for (i = 0; i < count; i++)
        if (units[i].reply && parse_reply(units[i].reply) != 1)
            fprintf(stderr, PROG ": record %lu: %s\n", (unsigned long)i + 1, units[i].reply);
    for (i = 0, n = 0; i < count; i++)
        if (!units[i].reply && !units[i].sent)
            list[n++] = i;
    if (n) {
        describe(&names, list, n);
        fprintf(stderr, PROG ": %s not sent: no server could be reached\n", names.data);
    }
    for (i = 0, n = 0; i < count; i++)
        if (!units[i].reply && units[i].sent)
            list[n++] = i;
    if (n) {
        describe(&names, list, n);
        fprintf(stderr, PROG ": %s: no reply from any server; a record without a reply may or may not be stored\n",
                names.data);
    }
    free(list);
    free(done);
    free(names.data);
    return failed ? EXIT_FAIL : 0;
}

/* ---------------------------------------------------------- command line */

/* A whole number from lo to hi, digits only (no sign, no spaces). */
static int parse_int(const char *text, long lo, long hi, long *value)
{
    char *end;
    long v;
    if (*text < '0' || *text > '9')
        return 0;
    v = strtol(text, &end, 10);
    if (*end || v < lo || v > hi)
        return 0;
    *value = v;
    return 1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* "host1,host2:2022,[::1]:2021": the servers in order (usage error for a bad
 * list).  An entry without a port gets default_port; an IPv6 address takes a
 * port only in brackets (a bare ::1 is an address without a port). */
static size_t parse_servers(const char *text, long default_port, const char *source,
                            struct server **out)
{
    size_t n = 0, cap = 0;
    const char *p = text;
    *out = NULL;
    for (;;) {
        const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p), *colon;
        char *entry, *host, *port_text = NULL;
        long port = default_port;
        size_t len, colons = 0, k;
        while (p < end && is_blank(*p))
            p++;
        while (end > p && is_blank(end[-1]))
            end--;
        len = (size_t)(end - p);
        entry = malloc(len + 1);
        if (!entry)
            die_memory();
        memcpy(entry, p, len);
        entry[len] = '\0';
        for (colon = entry; (colon = strchr(colon, ':')) != NULL; colon++)
            colons++;
        host = entry;
        if (entry[0] == '[') {
            char *close = strchr(entry, ']');
            if (!close)
                usage_error("%s: missing ']' in '%s'", source, entry);
            *close = '\0';
            host = entry + 1;
            if (close[1] == ':')
                port_text = close + 2;
            else if (close[1])
                usage_error("%s: expected ':PORT' after ']' in '%s'", source, text);
        } else if (colons == 1) {
            port_text = strchr(entry, ':');
            *port_text++ = '\0';
        }
        if (port_text && !parse_int(port_text, 1, 65535, &port))
            usage_error("%s: not a port number: '%s'", source, port_text);
        if (!*host)
            usage_error("%s: empty host name in '%s'", source, text);
        for (k = 0; host[k]; k++)
            if (is_blank(host[k]) || strchr("[],", host[k]))
                usage_error("%s: not a host name: '%s'", source, host);
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            *out = realloc(*out, cap * sizeof **out);
            if (!*out)
                die_memory();
        }
        (*out)[n].entry = entry;
        (*out)[n].host = host;
        (*out)[n].port = (int)port;
        snprintf((*out)[n].label, sizeof (*out)[n].label, strchr(host, ':') ? "[%s]:%d" : "%s:%d",
                 host, (int)port);
        n++;
        if (!comma)
            return n;
        p = comma + 1;
    }
}

static int check_phone(const char *phone)
{
    return *phone && !strpbrk(phone, "#;\\\r\n");
}

/* Take the option value: "-aVALUE", "--host=VALUE", or the next argument. */
static const char *option_value(int argc, char **argv, int *i, const char *arg, size_t namelen)
{
    if (arg[namelen] == '=' && arg[1] == '-')
        return arg + namelen + 1;
    if (arg[namelen] && arg[1] != '-')
        return arg + namelen;
    if (arg[namelen])
        usage_error("unknown option %s", arg);
    if (*i + 1 >= argc)
        usage_error("option %s needs a value", arg);
    return argv[++*i];
}

static int matches(const char *arg, const char *shortname, const char *longname, size_t *namelen)
{
    size_t n = strlen(longname);
    if (strncmp(arg, longname, n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
        *namelen = n;
        return 1;
    }
    if (strncmp(arg, shortname, 2) == 0) {
        *namelen = 2;
        return 1;
    }
    return 0;
}

static int run(int argc, char **argv)
{
    const char *host = NULL, *message = NULL;
    double timeout = DEFAULT_TIMEOUT;
    long port = DEFAULT_PORT, retries = DEFAULT_RETRIES;
    struct buf records = {0}, payload = {0}, text = {0};
    const char **numbers = calloc((size_t)argc + 1, sizeof *numbers);
    int i, nnumbers = 0, positional = 0, options_done = 0, port_given = 0, status;
    size_t count, nservers, tries, k;
    struct server *servers;
    struct unit *units;

    if (!numbers)
        die_memory();
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        size_t namelen;
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (positional++)
                buf_adds(&records, " ");
            buf_adds(&records, arg);
        } else if (strcmp(arg, "--") == 0) {
            options_done = 1;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            help();
            exit(0);
        } else if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0) {
            quiet = 1;
        } else if (matches(arg, "-a", "--host", &namelen)) {
            host = option_value(argc, argv, &i, arg, namelen);
        } else if (matches(arg, "-p", "--port", &namelen)) {
            value = option_value(argc, argv, &i, arg, namelen);
            if (!parse_int(value, 1, 65535, &port))
                usage_error("not a port number: '%s'", value);
            port_given = 1;
        } else if (matches(arg, "-t", "--timeout", &namelen)) {
            char *end;
            value = option_value(argc, argv, &i, arg, namelen);
            timeout = strtod(value, &end);
            if (!*value || *end || !(timeout > 0 && timeout <= MAX_SECONDS))
                usage_error("not a number of seconds from 0 to %d: '%s'", MAX_SECONDS, value);
        } else if (matches(arg, "-r", "--retries", &namelen)) {
            value = option_value(argc, argv, &i, arg, namelen);
            if (!parse_int(value, 0, MAX_RETRIES, &retries))
                usage_error("not a number of retries from 0 to %d: '%s'", MAX_RETRIES, value);
        } else if (matches(arg, "-n", "--number", &namelen)) {
            value = option_value(argc, argv, &i, arg, namelen);
            while (*value == ' ' || *value == '\t')
                value++;
            if (!check_phone(value))
                usage_error("bad phone number '%s' (empty, or contains # ; \\ or a line end)", value);
            numbers[nnumbers++] = value;
        } else if (matches(arg, "-m", "--message", &namelen)) {
            message = option_value(argc, argv, &i, arg, namelen);
        } else {
            usage_error("unknown option %s", arg);
        }
    }

    if (!port_given) {
        const char *env = getenv("SMSS_PORT");
        if (env && *env && !parse_int(env, 1, 65535, &port))
            usage_error("$SMSS_PORT: not a port number: '%s'", env);
    }
    if (host) {
        nservers = parse_servers(host, port, "-a", &servers);
    } else {
        host = getenv("SMSS_HOST");
        while (host && is_blank(*host))
            host++;
        nservers = parse_servers(host && *host ? host : DEFAULT_HOST, port, "$SMSS_HOST", &servers);
    }

    if (positional && (nnumbers || message))
        usage_error("give either records '#PHONE;TEXT' or -n PHONE -m TEXT, not both");
    if (positional) {
        buf_add(&payload, records.data, records.len);
    } else {
        if (message && !nnumbers)
            usage_error("-m needs at least one -n PHONE");
        if (!nnumbers)
            usage_error("nothing to send: give #PHONE;TEXT or -n PHONE -m TEXT");
        if ((message && strcmp(message, "-") == 0) || (!message && !stdin_is_tty())) {
            read_stdin_text(&text);
            if (!text.len)
                usage_error("no message text on stdin");
        } else if (!message) {
            usage_error("no message: give -m TEXT, or pipe the text on stdin");
        } else {
            buf_adds(&text, message);
        }
        for (i = 0; i < nnumbers; i++) {
            buf_adds(&payload, "#");
            buf_adds(&payload, numbers[i]);
            buf_adds(&payload, ";");
            escape_text(&payload, text.data ? text.data : "", text.len);
        }
    }
    count = record_spans(payload.data ? payload.data : "", payload.len, &units);
    if (!count) {
        fprintf(stderr, PROG ": nothing to send: a record starts with '#'\n");
        return EXIT_FAIL;
    }

    tries = deliver(payload.data, payload.len, units, count, servers, nservers, timeout, retries);
    status = report(units, count, servers, tries);
    for (k = 0; k < count; k++)
        free(units[k].reply);
    free(units);
    for (k = 0; k < nservers; k++)
        free(servers[k].entry);
    free(servers);
    free(payload.data);
    free(records.data);
    free(text.data);
    free(numbers);
    return status;
}

#ifdef _WIN32
int wmain(int argc, wchar_t **wargv)
{
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    WSADATA wsa;
    int i, status;
    if (!argv)
        die_memory();
    for (i = 0; i < argc; i++) {
        int n = WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, NULL, 0, NULL, NULL);
        argv[i] = malloc(n > 0 ? (size_t)n : 1);
        if (!argv[i])
            die_memory();
        argv[i][0] = '\0';
        if (n > 0)
            WideCharToMultiByte(CP_UTF8, 0, wargv[i], -1, argv[i], n, NULL, NULL);
    }
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
        fprintf(stderr, PROG ": cannot start Winsock\n");
        return EXIT_FAIL;
    }
    status = run(argc, argv);
    WSACleanup();
    return status;
}
#else
int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    return run(argc, argv);
}
#endif
