/* fuzz-milter-wire.c - libFuzzer target: the milter protocol's packets
 * (milter_wire.c) on arbitrary bytes.
 *
 * The input is what an MTA could write on the socket (the seed corpus is a
 * few Postfix-like sessions and a filter's replies). It is cut into packets
 * with tm_milter_wire_next_packet() in a loop, as a session does, twice:
 * with the data limit of 65536 and with a small one taken from the input,
 * so that refused lengths are reached too. Each packet is then decoded
 * every way the server decodes one:
 *   - tm_milter_wire_strings() with room for 4 and for 64 strings ('M',
 *     'R', 'L', ...) and after a first byte ('D'): the count is checked
 *     against a count of NULs made here, every string against the data, and
 *     the strings are encoded again with tm_milter_wire_append_strings(),
 *     which must give back the very bytes of the packet;
 *   - tm_milter_wire_negotiation(): TRUE exactly from 12 bytes, the numbers
 *     read in network order; the reply's macro lists after them, when they
 *     are well formed, encode back to the same bytes with
 *     tm_milter_wire_append_negotiation();
 *   - a change-header shape (index, name, value) through
 *     tm_milter_wire_append_change_header(), and any packet through
 *     tm_milter_wire_append(): both give back the same bytes.
 * The input is copied to a buffer of exactly its size, so that AddressSanitizer
 * sees any read past its end.
 */
#include <string.h>

#include "milter_wire.h"
#include "fuzz-common.h"

#define MAX_DATA 65536

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init_glib ();
  return 0;
}

static guint32
uint32_at (const guint8 *bytes)
{
  return ((guint32) bytes[0] << 24) | ((guint32) bytes[1] << 16) | ((guint32) bytes[2] << 8)
         | (guint32) bytes[3];
}

/* The packet as it came: header, command, data. */
static void
check_same_packet (const GByteArray *out, const TmMilterPacket *packet, const char *what)
{
  FUZZ_CHECK (out->len == packet->length + 5, "%s: %u bytes for data of %zu", what, out->len,
              packet->length);
  FUZZ_CHECK (uint32_at (out->data) == packet->length + 1, "%s: length %u for data of %zu", what,
              uint32_at (out->data), packet->length);
  FUZZ_CHECK (out->data[4] == (guint8) packet->command, "%s: command changed", what);
  FUZZ_CHECK (packet->length == 0 || memcmp (out->data + 5, packet->data, packet->length) == 0,
              "%s: data changed", what);
  /* And it reads back as one whole packet. */
  TmMilterPacket again;
  GError *error = NULL;
  gssize used = tm_milter_wire_next_packet (out->data, out->len, G_MAXSIZE, &again, &error);
  FUZZ_CHECK (used == (gssize) out->len && error == NULL, "%s: re-read gives %zd", what, used);
  FUZZ_CHECK (again.command == packet->command && again.length == packet->length,
              "%s: re-read differs", what);
}

/* tm_milter_wire_strings() on DATA (LENGTH bytes) with room for MAX, checked
 * against a count made here; re-encoded when whole. */
static void
check_strings (const TmMilterPacket *packet, const guint8 *data, gsize length, int max,
               gboolean whole_packet)
{
  const char *strings[65];
  /* Past MAX: must stay untouched. */
  const char *sentinel = "sentinel";
  strings[max] = sentinel;
  int count = tm_milter_wire_strings (data, length, strings, max);
  FUZZ_CHECK (strings[max] == sentinel, "wrote past %d strings", max);

  gsize nuls = 0;
  for (gsize i = 0; i < length; i++)
    nuls += data[i] == '\0';
  int expected;
  if (length == 0)
    expected = 0;
  else if (data[length - 1] != '\0' || nuls > (gsize) max)
    expected = -1;
  else
    expected = (int) nuls;
  FUZZ_CHECK (count == expected, "%d strings, expected %d (%zu bytes, max %d)", count, expected,
              length, max);
  if (count <= 0)
    return;

  /* Back to back, from the first byte to the last, each ending in NUL. */
  const guint8 *next = data;
  for (int i = 0; i < count; i++)
    {
      FUZZ_CHECK ((const guint8 *) strings[i] == next, "string %d does not start where expected",
                  i);
      gsize string_length = strlen (strings[i]);
      FUZZ_CHECK (next + string_length < data + length, "string %d runs past the data", i);
      next += string_length + 1;
    }
  FUZZ_CHECK (next == data + length, "strings end %td bytes before the data", data + length - next);

  if (!whole_packet)
    return;
  strings[count] = NULL;
  GByteArray *out = g_byte_array_new ();
  tm_milter_wire_append_strings (out, packet->command, strings);
  check_same_packet (out, packet, "append_strings");
  g_byte_array_unref (out);
}

/* An 'O' packet: the numbers, and (as in a filter's reply) macro lists. */
static void
check_negotiation (const TmMilterPacket *packet)
{
  guint32 version = 1, actions = 2, steps = 3;
  gboolean ok = tm_milter_wire_negotiation (packet->data, packet->length, &version, &actions,
                                            &steps);
  FUZZ_CHECK (ok == (packet->length >= 12), "negotiation of %zu bytes: %d", packet->length, ok);
  if (!ok)
    {
      FUZZ_CHECK (version == 1 && actions == 2 && steps == 3, "written though refused");
      return;
    }
  FUZZ_CHECK (version == uint32_at (packet->data) && actions == uint32_at (packet->data + 4)
              && steps == uint32_at (packet->data + 8), "numbers not in network order");

  /* The lists: stage numbers rising below TM_MILTER_STAGES, each with one
   * string. Only then is the packet one that the encoder can make. */
  const char *lists[TM_MILTER_STAGES] = { NULL };
  gsize offset = 12;
  int last_stage = -1;
  while (offset < packet->length)
    {
      if (packet->length - offset < 5)
        return;
      guint32 stage = uint32_at (packet->data + offset);
      if (stage >= TM_MILTER_STAGES || (int) stage <= last_stage)
        return;
      const guint8 *text = packet->data + offset + 4;
      const guint8 *nul = memchr (text, '\0', packet->length - offset - 4);
      if (nul == NULL)
        return;
      lists[stage] = (const char *) text;
      last_stage = (int) stage;
      offset = (gsize) (nul - packet->data) + 1;
    }
  GByteArray *out = g_byte_array_new ();
  tm_milter_wire_append_negotiation (out, version, actions, steps,
                                     last_stage >= 0 ? lists : NULL);
  /* The encoder writes 'O' whatever the command was. */
  FUZZ_CHECK (out->len == packet->length + 5, "negotiation re-encoded to %u bytes, not %zu",
              out->len, packet->length + 5);
  FUZZ_CHECK (uint32_at (out->data) == packet->length + 1 && out->data[4] == 'O'
              && memcmp (out->data + 5, packet->data, packet->length) == 0,
              "negotiation re-encoded differently");
  g_byte_array_unref (out);
}

/* A change-header shape: 4-byte index, name, value. */
static void
check_change_header (const TmMilterPacket *packet)
{
  if (packet->command != 'm' || packet->length < 4)
    return;
  const char *strings[3];
  if (tm_milter_wire_strings (packet->data + 4, packet->length - 4, strings, 2) != 2)
    return;
  GByteArray *out = g_byte_array_new ();
  tm_milter_wire_append_change_header (out, uint32_at (packet->data), strings[0], strings[1]);
  check_same_packet (out, packet, "append_change_header");
  g_byte_array_unref (out);
}

static void
check_packet (const TmMilterPacket *packet)
{
  check_strings (packet, packet->data, packet->length, 4, TRUE);
  check_strings (packet, packet->data, packet->length, 64, TRUE);
  /* Macros: the step's command letter, then names and values. */
  if (packet->length > 0)
    check_strings (packet, packet->data + 1, packet->length - 1, 64, FALSE);
  check_negotiation (packet);
  check_change_header (packet);

  GByteArray *out = g_byte_array_new ();
  tm_milter_wire_append (out, packet->command, packet->data, packet->length);
  check_same_packet (out, packet, "append");
  g_byte_array_unref (out);
}

/* Cuts BUFFER into packets of at most MAX_DATA_HERE bytes of data, as a
 * session does, until it needs more bytes or the stream is broken. */
static void
read_packets (const guint8 *buffer, gsize size, gsize max_data_here)
{
  gsize offset = 0;
  for (;;)
    {
      gsize available = size - offset;
      TmMilterPacket packet = { 0 };
      GError *error = NULL;
      gssize used = tm_milter_wire_next_packet (buffer + offset, available, max_data_here,
                                                &packet, &error);
      if (used < 0)
        {
          FUZZ_CHECK (used == -1 && error != NULL && error->domain == TM_MILTER_WIRE_ERROR,
                      "refused without a proper error");
          FUZZ_CHECK (available >= 4, "refused with only %zu bytes", available);
          guint32 length = uint32_at (buffer + offset);
          FUZZ_CHECK (length == 0 || length - 1 > max_data_here, "length %u refused (max %zu)",
                      length, max_data_here);
          g_error_free (error);
          return;
        }
      FUZZ_CHECK (error == NULL, "an error with a result of %zd", used);
      if (used == 0)
        {
          /* More is needed: the header or the data is incomplete. */
          FUZZ_CHECK (available < 4 || available - 4 < uint32_at (buffer + offset),
                      "a whole packet of %u bytes left unread", uint32_at (buffer + offset));
          return;
        }
      guint32 length = uint32_at (buffer + offset);
      FUZZ_CHECK (used == (gssize) length + 4 && (gsize) used <= available,
                  "used %zd for length %u with %zu available", used, length, available);
      FUZZ_CHECK (length >= 1 && length - 1 <= max_data_here, "length %u accepted (max %zu)",
                  length, max_data_here);
      FUZZ_CHECK (packet.command == (char) buffer[offset + 4], "wrong command");
      FUZZ_CHECK (packet.data == buffer + offset + 5 && packet.length == length - 1,
                  "packet data not where it is in the buffer");
      check_packet (&packet);
      offset += (gsize) used;
    }
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  /* An exact-size heap copy, so that ASan sees any read past the end. */
  guint8 *copy = g_malloc (size > 0 ? size : 1);
  if (size > 0)
    memcpy (copy, data, size);
  read_packets (copy, size, MAX_DATA);
  /* A small limit, from the last byte: 0 to 63. */
  read_packets (copy, size, size > 0 ? copy[size - 1] & 0x3f : 0);
  g_free (copy);
  return 0;
}
