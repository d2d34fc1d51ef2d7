/* milter_wire.h - the milter protocol's packets: framing, decoding, encoding.
 *
 * The milter protocol (version 6, as Postfix and Sendmail 8.14+ speak it)
 * is a stream of packets, each a 4-byte length in network order (counting
 * the command byte), one command byte, and the command's data. The MTA
 * sends commands (SMFIC_*: 'O' negotiate, 'D' macros, 'M' MAIL FROM, 'R'
 * RCPT TO, 'L' header, 'N' end of headers, 'B' body chunk, 'E' end of
 * message, 'A' abort, 'Q' quit, ...); the filter answers with replies
 * ('c' continue, 'a' accept, 't' tempfail, 'y' reply code, ...) and, at
 * end of message, modification requests ('h' add header, 'm' change
 * header, '+' add recipient, '-' delete recipient).
 *
 * This module only converts between bytes and values; it owns no state and
 * does no I/O, so that the session code (milter_server.h) stays readable
 * and the decoding can be fuzzed on its own (tests/fuzz/fuzz-milter-wire.c).
 * Everything it reads comes from the MTA's socket and is checked: a length
 * out of range or data that does not hold what its command needs is an
 * error, never a read past the packet.
 *
 * Usage (reading):
 *   TmMilterPacket packet;
 *   gssize used = tm_milter_wire_next_packet (buffer, available, max, &packet, &error);
 *   used > 0: PACKET points into BUFFER (valid until the buffer changes);
 *   used == 0: more bytes are needed; used < 0: the stream is broken.
 * Then, per command: tm_milter_wire_strings() for the NUL-terminated
 * strings of 'M', 'R', 'L', 'H', 'U' and 'D', tm_milter_wire_negotiation()
 * for 'O'.
 * Writing: tm_milter_wire_append*() add one packet to a GByteArray, so that
 * several (the modifications and the final reply) leave in one write.
 */
#ifndef TM_MILTER_WIRE_H
#define TM_MILTER_WIRE_H

#include <glib.h>

/* The protocol version this implementation speaks. */
#define TM_MILTER_PROTOCOL_VERSION 6

/* Actions a filter may take at end of message (negotiated, 'O'). */
enum {
  TM_MILTER_ACTION_ADD_HEADERS = 0x01,
  TM_MILTER_ACTION_CHANGE_BODY = 0x02,
  TM_MILTER_ACTION_ADD_RECIPIENTS = 0x04,
  TM_MILTER_ACTION_DELETE_RECIPIENTS = 0x08,
  TM_MILTER_ACTION_CHANGE_HEADERS = 0x10,
  TM_MILTER_ACTION_QUARANTINE = 0x20,
  TM_MILTER_ACTION_CHANGE_SENDER = 0x40,
  TM_MILTER_ACTION_ADD_RECIPIENTS_WITH_ARGS = 0x80,
  TM_MILTER_ACTION_SET_MACRO_LIST = 0x100,
};

/* Protocol steps the filter may skip, or answer without a reply
 * (negotiated, 'O'). */
enum {
  TM_MILTER_SKIP_CONNECT = 0x01,
  TM_MILTER_SKIP_HELO = 0x02,
  TM_MILTER_SKIP_MAIL = 0x04,
  TM_MILTER_SKIP_RCPT = 0x08,
  TM_MILTER_SKIP_BODY = 0x10,
  TM_MILTER_SKIP_HEADERS = 0x20,
  TM_MILTER_SKIP_EOH = 0x40,
  TM_MILTER_NO_REPLY_HEADER = 0x80,
  TM_MILTER_SKIP_UNKNOWN = 0x100,
  TM_MILTER_SKIP_DATA = 0x200,
  TM_MILTER_NO_REPLY_CONNECT = 0x1000,
  TM_MILTER_NO_REPLY_HELO = 0x2000,
  TM_MILTER_NO_REPLY_MAIL = 0x4000,
  TM_MILTER_NO_REPLY_RCPT = 0x8000,
  TM_MILTER_NO_REPLY_DATA = 0x10000,
  TM_MILTER_NO_REPLY_UNKNOWN = 0x20000,
  TM_MILTER_NO_REPLY_EOH = 0x40000,
  TM_MILTER_NO_REPLY_BODY = 0x80000,
  TM_MILTER_HEADER_LEADING_SPACE = 0x100000,
};

/* The protocol stages macros belong to ('D' packets and macro lists). */
typedef enum {
  TM_MILTER_STAGE_CONNECT = 0,
  TM_MILTER_STAGE_HELO = 1,
  TM_MILTER_STAGE_MAIL = 2,
  TM_MILTER_STAGE_RCPT = 3,
  TM_MILTER_STAGE_DATA = 4,
  TM_MILTER_STAGE_EOM = 5,
  TM_MILTER_STAGE_EOH = 6,
  TM_MILTER_STAGES = 7
} TmMilterStage;

/* A packet's data may be at most this long unless the caller allows more:
 * Postfix sends body chunks of up to 64 KiB, and a header line up to its
 * header_size_limit (100 KiB by default). */
#define TM_MILTER_DEFAULT_MAX_PACKET (1024 * 1024)

#define TM_MILTER_WIRE_ERROR (tm_milter_wire_error_quark ())
GQuark tm_milter_wire_error_quark (void);

typedef struct {
  char command;          /* the command letter, e.g. 'L' */
  const guint8 *data;    /* into the caller's buffer; not NUL-terminated */
  gsize length;          /* bytes of data (the packet's length minus one) */
} TmMilterPacket;

/* The next whole packet at the start of BUFFER (AVAILABLE bytes): the bytes
 * it takes (> 0), 0 when BUFFER does not hold a whole packet yet, or -1 with
 * ERROR set when its length is 0 or its data longer than MAX_DATA. */
gssize tm_milter_wire_next_packet (const guint8 *buffer, gsize available, gsize max_data,
                                   TmMilterPacket *packet, GError **error);

/* Splits DATA (LENGTH bytes) into its NUL-terminated strings and stores
 * pointers to them, in order, in STRINGS (at most MAX_STRINGS), which
 * therefore point into DATA. The count, or -1 when DATA does not end in NUL
 * or holds more than MAX_STRINGS strings. LENGTH 0 gives 0 strings. */
int tm_milter_wire_strings (const guint8 *data, gsize length, const char **strings,
                            int max_strings);

/* The three numbers of an 'O' packet (version, actions, protocol steps);
 * FALSE when DATA is shorter than 12 bytes. Extra bytes are ignored. */
gboolean tm_milter_wire_negotiation (const guint8 *data, gsize length, guint32 *version,
                                     guint32 *actions, guint32 *steps);

/* Appends one packet: COMMAND followed by LENGTH bytes of DATA. */
void tm_milter_wire_append (GByteArray *out, char command, const void *data, gsize length);

/* Appends one packet whose data is each of the strings (NULL-terminated
 * list) with its NUL, e.g. 'h' "Name" "Value" for an added header. */
void tm_milter_wire_append_strings (GByteArray *out, char command, const char *const *strings);

/* Appends a change-header packet ('m'): index (1-based, among headers of
 * that name), name, value; an empty value deletes the header. */
void tm_milter_wire_append_change_header (GByteArray *out, guint32 index, const char *name,
                                          const char *value);

/* Appends the negotiation reply: version, actions, steps, then for each
 * stage with a non-NULL MACRO_LISTS[stage] (space-separated macro names)
 * the stage number and the list. MACRO_LISTS may be NULL. */
void tm_milter_wire_append_negotiation (GByteArray *out, guint32 version, guint32 actions,
                                        guint32 steps, const char *const *macro_lists);

#endif
