/* test-milter-wire.c - unit tests for milter_wire.c: the milter protocol's
 * packets, framed, decoded and encoded without any I/O.
 *
 * Inputs are written out byte by byte (a length in network order counting
 * the command byte, the command, the data) rather than made with the
 * encoder under test, so that a mistake shared by both directions shows.
 * Every buffer handed to a decoder is a heap copy of exactly its length, so
 * that AddressSanitizer (CI's sanitizer run) catches a read past the end.
 */
#include "milter_wire.h"

#include <string.h>

/* --- helpers ------------------------------------------------------------------ */

/* An exact-size heap copy of LENGTH bytes (LENGTH 0 gives a 1-byte buffer
 * that must not be read). */
static guint8 *
exact_copy (const void *bytes, gsize length)
{
  guint8 *copy = g_malloc (length > 0 ? length : 1);
  if (length > 0)
    memcpy (copy, bytes, length);
  return copy;
}

/* OUT holds exactly the LENGTH bytes EXPECTED. */
static void
assert_bytes (const GByteArray *out, const void *expected, gsize length)
{
  g_assert_cmpmem (out->data, out->len, expected, length);
}

/* next_packet on an exact copy of BYTES; the result, PACKET's fields refer
 * to the copy (freed with *COPY). */
static gssize
next_packet (const void *bytes, gsize length, gsize max_data, TmMilterPacket *packet,
             guint8 **copy, GError **error)
{
  *copy = exact_copy (bytes, length);
  return tm_milter_wire_next_packet (*copy, length, max_data, packet, error);
}

/* A packet with data "Hello" and command 'B': length 6 counts 'B' too. */
static const guint8 body_hello[] = { 0, 0, 0, 6, 'B', 'H', 'e', 'l', 'l', 'o' };

/* --- next_packet ------------------------------------------------------------ */

static void
test_next_packet_incomplete_header (void)
{
  for (gsize available = 0; available < 4; available++)
    {
      TmMilterPacket packet = { 0 };
      g_autoptr (GError) error = NULL;
      g_autofree guint8 *copy = NULL;
      g_assert_cmpint (next_packet (body_hello, available, 65536, &packet, &copy, &error), ==, 0);
      g_assert_no_error (error);
    }
}

static void
test_next_packet_incomplete_data (void)
{
  /* The header and the command, or part of the data: more is needed. */
  for (gsize available = 4; available < sizeof body_hello; available++)
    {
      TmMilterPacket packet = { 0 };
      g_autoptr (GError) error = NULL;
      g_autofree guint8 *copy = NULL;
      g_assert_cmpint (next_packet (body_hello, available, 65536, &packet, &copy, &error), ==, 0);
      g_assert_no_error (error);
    }
}

static void
test_next_packet_exact (void)
{
  TmMilterPacket packet = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *copy = NULL;
  gssize used = next_packet (body_hello, sizeof body_hello, 65536, &packet, &copy, &error);
  g_assert_no_error (error);
  g_assert_cmpint (used, ==, (gssize) sizeof body_hello);
  g_assert_cmpint (packet.command, ==, 'B');
  g_assert_cmpuint (packet.length, ==, 5);
  /* The data points into the caller's buffer, right after the command. */
  g_assert_true (packet.data == copy + 5);
  g_assert_cmpmem (packet.data, packet.length, "Hello", 5);
}

static void
test_next_packet_command_only (void)
{
  /* 'Q' has no data: length 1. */
  static const guint8 quit[] = { 0, 0, 0, 1, 'Q' };
  TmMilterPacket packet = { 0 };
  g_autofree guint8 *copy = NULL;
  gssize used = next_packet (quit, sizeof quit, 65536, &packet, &copy, NULL);
  g_assert_cmpint (used, ==, 5);
  g_assert_cmpint (packet.command, ==, 'Q');
  g_assert_cmpuint (packet.length, ==, 0);
  /* Even with no data allowed at all. */
  TmMilterPacket again = { 0 };
  g_assert_cmpint (tm_milter_wire_next_packet (copy, sizeof quit, 0, &again, NULL), ==, 5);
  g_assert_cmpuint (again.length, ==, 0);
}

static void
test_next_packet_two_back_to_back (void)
{
  /* 'M' "<a@b>\0" then 'R' "<c@d>\0", and the first 3 bytes of a third. */
  static const guint8 bytes[] = {
    0, 0, 0, 7, 'M', '<', 'a', '@', 'b', '>', 0,
    0, 0, 0, 7, 'R', '<', 'c', '@', 'd', '>', 0,
    0, 0, 0,
  };
  g_autofree guint8 *copy = exact_copy (bytes, sizeof bytes);
  gsize offset = 0;
  TmMilterPacket packet = { 0 };

  gssize used = tm_milter_wire_next_packet (copy, sizeof bytes, 65536, &packet, NULL);
  g_assert_cmpint (used, ==, 11);
  g_assert_cmpint (packet.command, ==, 'M');
  g_assert_cmpmem (packet.data, packet.length, "<a@b>", 6);
  offset += (gsize) used;

  used = tm_milter_wire_next_packet (copy + offset, sizeof bytes - offset, 65536, &packet, NULL);
  g_assert_cmpint (used, ==, 11);
  g_assert_cmpint (packet.command, ==, 'R');
  g_assert_cmpmem (packet.data, packet.length, "<c@d>", 6);
  g_assert_true (packet.data == copy + 16);
  offset += (gsize) used;

  /* What is left is not a whole header. */
  g_assert_cmpuint (sizeof bytes - offset, ==, 3);
  g_assert_cmpint (tm_milter_wire_next_packet (copy + offset, sizeof bytes - offset, 65536,
                                               &packet, NULL), ==, 0);
}

static void
test_next_packet_length_zero (void)
{
  /* A length of 0 is not even a command byte: an error as soon as the
   * four length bytes are in, whatever follows. */
  static const guint8 zero[] = { 0, 0, 0, 0, 'C', 'x' };
  for (gsize available = 4; available <= sizeof zero; available++)
    {
      TmMilterPacket packet = { 0 };
      g_autoptr (GError) error = NULL;
      g_autofree guint8 *copy = NULL;
      g_assert_cmpint (next_packet (zero, available, 65536, &packet, &copy, &error), ==, -1);
      g_assert_error (error, TM_MILTER_WIRE_ERROR, 0);
      g_assert_nonnull (error->message);
    }
  /* Also with no limit at all: 0 is not taken for a huge length. */
  g_autoptr (GError) unlimited = NULL;
  g_autofree guint8 *unlimited_copy = exact_copy (zero, sizeof zero);
  TmMilterPacket unlimited_packet = { 0 };
  g_assert_cmpint (tm_milter_wire_next_packet (unlimited_copy, sizeof zero, G_MAXSIZE,
                                               &unlimited_packet, &unlimited), ==, -1);
  g_assert_error (unlimited, TM_MILTER_WIRE_ERROR, 0);
  /* A NULL error is allowed. */
  g_autofree guint8 *copy = exact_copy (zero, 4);
  TmMilterPacket packet = { 0 };
  g_assert_cmpint (tm_milter_wire_next_packet (copy, 4, 65536, &packet, NULL), ==, -1);
}

static void
test_next_packet_over_max (void)
{
  /* Data of 11 bytes (length 12) with at most 10 allowed: refused from
   * the header alone, before the data has arrived. */
  static const guint8 header[] = { 0, 0, 0, 12, 'B' };
  TmMilterPacket packet = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *copy = NULL;
  g_assert_cmpint (next_packet (header, 4, 10, &packet, &copy, &error), ==, -1);
  g_assert_error (error, TM_MILTER_WIRE_ERROR, 0);

  /* A length with the top bit set (a negative number to a careless
   * reader) and the largest length of all. */
  static const guint8 huge[] = { 0x80, 0, 0, 1, 'B' };
  static const guint8 largest[] = { 0xff, 0xff, 0xff, 0xff, 'B' };
  g_autofree guint8 *huge_copy = NULL, *largest_copy = NULL;
  g_autoptr (GError) huge_error = NULL;
  g_autoptr (GError) largest_error = NULL;
  g_assert_cmpint (next_packet (huge, sizeof huge, TM_MILTER_DEFAULT_MAX_PACKET, &packet,
                                &huge_copy, &huge_error), ==, -1);
  g_assert_error (huge_error, TM_MILTER_WIRE_ERROR, 0);
  g_assert_cmpint (next_packet (largest, sizeof largest, TM_MILTER_DEFAULT_MAX_PACKET, &packet,
                                &largest_copy, &largest_error), ==, -1);
  g_assert_error (largest_error, TM_MILTER_WIRE_ERROR, 0);

  /* With no limit to speak of, the largest length is merely incomplete. */
  g_assert_cmpint (tm_milter_wire_next_packet (largest_copy, sizeof largest, G_MAXSIZE, &packet,
                                               NULL), ==, 0);
}

static void
test_next_packet_max_boundary (void)
{
  /* Data of exactly MAX bytes (length MAX + 1) is accepted; one more is not. */
  const gsize max = 1000;
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  guint8 header[5] = { 0, 0, (guint8) ((max + 1) >> 8), (guint8) (max + 1), 'B' };
  g_byte_array_append (bytes, header, 5);
  for (gsize i = 0; i < max; i++)
    {
      guint8 byte = (guint8) (i * 7);
      g_byte_array_append (bytes, &byte, 1);
    }
  TmMilterPacket packet = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *copy = NULL;
  gssize used = next_packet (bytes->data, bytes->len, max, &packet, &copy, &error);
  g_assert_no_error (error);
  g_assert_cmpint (used, ==, (gssize) (max + 5));
  g_assert_cmpuint (packet.length, ==, max);
  g_assert_cmpmem (packet.data, packet.length, bytes->data + 5, max);

  /* The same bytes with one less allowed. */
  g_autoptr (GError) over = NULL;
  g_assert_cmpint (tm_milter_wire_next_packet (copy, bytes->len, max - 1, &packet, &over), ==, -1);
  g_assert_error (over, TM_MILTER_WIRE_ERROR, 0);
}

/* --- strings ------------------------------------------------------------------ */

/* tm_milter_wire_strings on an exact copy of DATA; the count. */
static int
split (const void *data, gsize length, const char **strings, int max, guint8 **copy)
{
  *copy = exact_copy (data, length);
  return tm_milter_wire_strings (*copy, length, strings, max);
}

static void
test_strings_empty (void)
{
  const char *strings[4] = { NULL };
  g_autofree guint8 *copy = NULL;
  g_assert_cmpint (split ("", 0, strings, 4, &copy), ==, 0);
  g_assert_null (strings[0]);
  /* Even when no string at all is allowed. */
  g_assert_cmpint (tm_milter_wire_strings (copy, 0, strings, 0), ==, 0);
}

static void
test_strings_one (void)
{
  const char *strings[4] = { NULL };
  g_autofree guint8 *copy = NULL;
  g_assert_cmpint (split ("<a@example.org>", 16, strings, 4, &copy), ==, 1);
  g_assert_cmpstr (strings[0], ==, "<a@example.org>");
  /* Into the data, not a copy. */
  g_assert_true (strings[0] == (const char *) copy);
  g_assert_null (strings[1]);

  /* A single NUL is one empty string. */
  g_autofree guint8 *nul = NULL;
  g_assert_cmpint (split ("", 1, strings, 4, &nul), ==, 1);
  g_assert_cmpstr (strings[0], ==, "");
}

static void
test_strings_several (void)
{
  static const char data[] = "<a@example.org>\0SIZE=1234\0BODY=8BITMIME";
  const char *strings[8] = { NULL };
  g_autofree guint8 *copy = NULL;
  g_assert_cmpint (split (data, sizeof data, strings, 8, &copy), ==, 3);
  g_assert_cmpstr (strings[0], ==, "<a@example.org>");
  g_assert_cmpstr (strings[1], ==, "SIZE=1234");
  g_assert_cmpstr (strings[2], ==, "BODY=8BITMIME");
  g_assert_true (strings[1] == (const char *) copy + 16);
  g_assert_null (strings[3]);
  /* Exactly as many as allowed. */
  g_assert_cmpint (tm_milter_wire_strings (copy, sizeof data, strings, 3), ==, 3);
}

static void
test_strings_missing_final_nul (void)
{
  const char *strings[4];
  g_autofree guint8 *a = NULL, *b = NULL, *c = NULL;
  g_assert_cmpint (split ("abc", 3, strings, 4, &a), ==, -1);
  g_assert_cmpint (split ("Subject\0Hello", 13, strings, 4, &b), ==, -1);
  /* One byte, not a NUL. */
  g_assert_cmpint (split ("x", 1, strings, 4, &c), ==, -1);
}

static void
test_strings_too_many (void)
{
  static const char data[] = "a\0b\0c";
  const char *strings[3] = { NULL };
  g_autofree guint8 *copy = NULL;
  g_assert_cmpint (split (data, sizeof data, strings, 2, &copy), ==, -1);
  /* Never written past MAX. */
  g_assert_null (strings[2]);
  g_assert_cmpint (tm_milter_wire_strings (copy, sizeof data, strings, 1), ==, -1);
  g_assert_cmpint (tm_milter_wire_strings (copy, sizeof data, strings, 0), ==, -1);
  g_assert_cmpint (tm_milter_wire_strings (copy, sizeof data, strings, 3), ==, 3);
}

static void
test_strings_empty_inside (void)
{
  /* A header with an empty value ("X-Empty" ""), and runs of NULs. */
  static const char header[] = "X-Empty\0";
  const char *strings[8] = { NULL };
  g_autofree guint8 *a = NULL, *b = NULL;
  g_assert_cmpint (split (header, sizeof header, strings, 8, &a), ==, 2);
  g_assert_cmpstr (strings[0], ==, "X-Empty");
  g_assert_cmpstr (strings[1], ==, "");

  static const char runs[] = "\0\0a\0\0";
  g_assert_cmpint (split (runs, sizeof runs, strings, 8, &b), ==, 5);
  g_assert_cmpstr (strings[0], ==, "");
  g_assert_cmpstr (strings[1], ==, "");
  g_assert_cmpstr (strings[2], ==, "a");
  g_assert_cmpstr (strings[3], ==, "");
  g_assert_cmpstr (strings[4], ==, "");
  g_assert_true (strings[4] == (const char *) b + 5);
}

/* --- negotiation ------------------------------------------------------------ */

static void
test_negotiation_short (void)
{
  static const guint8 data[12] = { 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff };
  for (gsize length = 0; length < 12; length++)
    {
      guint32 version = 77, actions = 78, steps = 79;
      g_autofree guint8 *copy = exact_copy (data, length);
      g_assert_false (tm_milter_wire_negotiation (copy, length, &version, &actions, &steps));
      /* Nothing written. */
      g_assert_cmpuint (version, ==, 77);
      g_assert_cmpuint (actions, ==, 78);
      g_assert_cmpuint (steps, ==, 79);
    }
}

static void
test_negotiation_big_endian (void)
{
  /* What Postfix 3 offers: version 6, every action, every step. */
  static const guint8 postfix[12] = { 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff };
  guint32 version = 0, actions = 0, steps = 0;
  g_autofree guint8 *copy = exact_copy (postfix, sizeof postfix);
  g_assert_true (tm_milter_wire_negotiation (copy, sizeof postfix, &version, &actions, &steps));
  g_assert_cmpuint (version, ==, 6);
  g_assert_cmpuint (actions, ==, 0x1ff);
  g_assert_cmpuint (steps, ==, 0x1fffff);

  /* Every byte in its place, top bits included. */
  static const guint8 mixed[12] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                                    0x80, 0x00, 0x00, 0x01 };
  g_autofree guint8 *mixed_copy = exact_copy (mixed, sizeof mixed);
  g_assert_true (tm_milter_wire_negotiation (mixed_copy, sizeof mixed, &version, &actions, &steps));
  g_assert_cmpuint (version, ==, 0x12345678);
  g_assert_cmpuint (actions, ==, 0x9abcdef0);
  g_assert_cmpuint (steps, ==, 0x80000001);
}

static void
test_negotiation_extra_bytes_ignored (void)
{
  /* Anything after the three numbers (macro lists in a filter's reply, or
   * whatever a later version adds) is not looked at. */
  static const guint8 data[] = { 0, 0, 0, 2, 0, 0, 0, 0x11, 0, 0, 0, 0x40,
                                 0, 0, 0, 2, 'i', 0, 0xff };
  guint32 version = 0, actions = 0, steps = 0;
  g_autofree guint8 *copy = exact_copy (data, sizeof data);
  g_assert_true (tm_milter_wire_negotiation (copy, sizeof data, &version, &actions, &steps));
  g_assert_cmpuint (version, ==, 2);
  g_assert_cmpuint (actions, ==, 0x11);
  g_assert_cmpuint (steps, ==, 0x40);
}

/* --- encoding ------------------------------------------------------------------ */

static void
test_append_no_data (void)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();
  tm_milter_wire_append (out, 'c', NULL, 0);
  static const guint8 expected[] = { 0, 0, 0, 1, 'c' };
  assert_bytes (out, expected, sizeof expected);
  /* Appended, not replaced. */
  tm_milter_wire_append (out, 'a', NULL, 0);
  static const guint8 both[] = { 0, 0, 0, 1, 'c', 0, 0, 0, 1, 'a' };
  assert_bytes (out, both, sizeof both);
}

static void
test_append_data (void)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();
  static const char reply[] = "451 4.3.0 try later";   /* sent with its NUL */
  tm_milter_wire_append (out, 'y', reply, sizeof reply);
  static const guint8 expected[] = { 0, 0, 0, 21, 'y', '4', '5', '1', ' ', '4', '.', '3', '.', '0',
                                     ' ', 't', 'r', 'y', ' ', 'l', 'a', 't', 'e', 'r', 0 };
  assert_bytes (out, expected, sizeof expected);

  /* Binary data with NULs, and a length that needs the third byte. */
  g_autoptr (GByteArray) big = g_byte_array_new ();
  g_autofree guint8 *chunk = g_malloc (300);
  for (int i = 0; i < 300; i++)
    chunk[i] = (guint8) i;
  tm_milter_wire_append (big, 'B', chunk, 300);
  g_assert_cmpuint (big->len, ==, 305);
  static const guint8 header[] = { 0, 0, 0x01, 0x2d, 'B' };   /* 301 */
  g_assert_cmpmem (big->data, 5, header, 5);
  g_assert_cmpmem (big->data + 5, 300, chunk, 300);
}

static void
test_append_strings (void)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();
  const char *header[] = { "X-Ticket", " 42", NULL };
  tm_milter_wire_append_strings (out, 'h', header);
  static const guint8 expected[] = { 0, 0, 0, 14, 'h', 'X', '-', 'T', 'i', 'c', 'k', 'e', 't', 0,
                                     ' ', '4', '2', 0 };
  assert_bytes (out, expected, sizeof expected);

  /* One string, e.g. a recipient. */
  g_autoptr (GByteArray) rcpt = g_byte_array_new ();
  const char *address[] = { "<b@x>", NULL };
  tm_milter_wire_append_strings (rcpt, '+', address);
  static const guint8 expected_rcpt[] = { 0, 0, 0, 7, '+', '<', 'b', '@', 'x', '>', 0 };
  assert_bytes (rcpt, expected_rcpt, sizeof expected_rcpt);
}

static void
test_append_strings_empty (void)
{
  /* No strings: the command alone. */
  g_autoptr (GByteArray) none = g_byte_array_new ();
  const char *no_strings[] = { NULL };
  tm_milter_wire_append_strings (none, 'h', no_strings);
  static const guint8 expected_none[] = { 0, 0, 0, 1, 'h' };
  assert_bytes (none, expected_none, sizeof expected_none);

  /* Empty strings still take their NUL. */
  g_autoptr (GByteArray) empty = g_byte_array_new ();
  const char *empties[] = { "X-Empty", "", NULL };
  tm_milter_wire_append_strings (empty, 'h', empties);
  static const guint8 expected_empty[] = { 0, 0, 0, 10, 'h', 'X', '-', 'E', 'm', 'p', 't', 'y',
                                           0, 0 };
  assert_bytes (empty, expected_empty, sizeof expected_empty);
}

static void
test_append_change_header (void)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();
  tm_milter_wire_append_change_header (out, 2, "Subject", "[#7] Hi");
  /* 1 + 4 + "Subject\0" (8) + "[#7] Hi\0" (8) = 21 */
  static const guint8 expected[] = { 0, 0, 0, 21, 'm', 0, 0, 0, 2,
                                     'S', 'u', 'b', 'j', 'e', 'c', 't', 0,
                                     '[', '#', '7', ']', ' ', 'H', 'i', 0 };
  assert_bytes (out, expected, sizeof expected);

  /* An empty value deletes; the index is 32 bits in network order. */
  g_autoptr (GByteArray) delete = g_byte_array_new ();
  tm_milter_wire_append_change_header (delete, 0x01020304, "X-Old", "");
  static const guint8 expected_delete[] = { 0, 0, 0, 12, 'm', 1, 2, 3, 4,
                                            'X', '-', 'O', 'l', 'd', 0, 0 };
  assert_bytes (delete, expected_delete, sizeof expected_delete);
}

static void
test_append_negotiation_without_lists (void)
{
  static const guint8 expected[] = { 0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 0x01, 0x11,
                                     0, 0x1c, 0x00, 0x40 };
  g_autoptr (GByteArray) out = g_byte_array_new ();
  tm_milter_wire_append_negotiation (out, 6, 0x111, 0x1c0040, NULL);
  assert_bytes (out, expected, sizeof expected);

  /* A list array with every stage NULL is the same as no array. */
  const char *none[TM_MILTER_STAGES] = { NULL };
  g_autoptr (GByteArray) with_nulls = g_byte_array_new ();
  tm_milter_wire_append_negotiation (with_nulls, 6, 0x111, 0x1c0040, none);
  assert_bytes (with_nulls, expected, sizeof expected);
}

static void
test_append_negotiation_with_lists (void)
{
  /* The lists the daemon asks for: the queue id and the authenticated
   * user at MAIL (stage 2), the queue id at end of message (stage 5). */
  const char *lists[TM_MILTER_STAGES] = { NULL };
  lists[TM_MILTER_STAGE_MAIL] = "i {auth_authen}";
  lists[TM_MILTER_STAGE_EOM] = "i";
  g_autoptr (GByteArray) out = g_byte_array_new ();
  tm_milter_wire_append_negotiation (out, 6, 0x100, 0, lists);
  /* 1 + 12 + (4 + 16) + (4 + 2) = 39 */
  static const guint8 expected[] = {
    0, 0, 0, 39, 'O',
    0, 0, 0, 6, 0, 0, 1, 0, 0, 0, 0, 0,
    0, 0, 0, 2, 'i', ' ', '{', 'a', 'u', 't', 'h', '_', 'a', 'u', 't', 'h', 'e', 'n', '}', 0,
    0, 0, 0, 5, 'i', 0,
  };
  assert_bytes (out, expected, sizeof expected);

  /* Every stage, in stage order, an empty list included. */
  const char *all[TM_MILTER_STAGES] = { "j", "", "i", "{rcpt_addr}", "x", "y", "z" };
  g_autoptr (GByteArray) every = g_byte_array_new ();
  tm_milter_wire_append_negotiation (every, 2, 0, 0, all);
  static const guint8 expected_every[] = {
    0, 0, 0, 64, 'O',
    0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 'j', 0,
    0, 0, 0, 1, 0,
    0, 0, 0, 2, 'i', 0,
    0, 0, 0, 3, '{', 'r', 'c', 'p', 't', '_', 'a', 'd', 'd', 'r', '}', 0,
    0, 0, 0, 4, 'x', 0,
    0, 0, 0, 5, 'y', 0,
    0, 0, 0, 6, 'z', 0,
  };
  assert_bytes (every, expected_every, sizeof expected_every);
}

/* --- round trip ------------------------------------------------------------ */

static void
test_round_trip (void)
{
  /* A filter's answer to end of message, and a negotiation reply, encoded
   * one after the other into one buffer, then read back. */
  const char *lists[TM_MILTER_STAGES] = { NULL };
  lists[TM_MILTER_STAGE_MAIL] = "i {auth_authen}";
  const char *header[] = { "X-Ticket", "", NULL };
  const char *recipient[] = { "<new@example.org>", NULL };
  g_autoptr (GByteArray) out = g_byte_array_new ();
  tm_milter_wire_append_negotiation (out, 6, 0x1ff, 0x1fffff, lists);
  tm_milter_wire_append_strings (out, 'h', header);
  tm_milter_wire_append_change_header (out, 3, "Subject", "Re: x");
  tm_milter_wire_append_strings (out, '+', recipient);
  tm_milter_wire_append (out, 'y', "451 4.3.0 later", 16);
  tm_milter_wire_append (out, 'c', NULL, 0);

  g_autofree guint8 *copy = exact_copy (out->data, out->len);
  gsize offset = 0;
  TmMilterPacket packet;
  const char *strings[8];

  gssize used = tm_milter_wire_next_packet (copy, out->len, 65536, &packet, NULL);
  g_assert_cmpint (used, >, 0);
  offset += (gsize) used;
  g_assert_cmpint (packet.command, ==, 'O');
  guint32 version, actions, steps;
  g_assert_true (tm_milter_wire_negotiation (packet.data, packet.length, &version, &actions,
                                             &steps));
  g_assert_cmpuint (version, ==, 6);
  g_assert_cmpuint (actions, ==, 0x1ff);
  g_assert_cmpuint (steps, ==, 0x1fffff);
  /* After the numbers: the stage, then the list as a string. */
  g_assert_cmpuint (packet.length, ==, 12 + 4 + 16);
  static const guint8 stage_mail[] = { 0, 0, 0, 2 };
  g_assert_cmpmem (packet.data + 12, 4, stage_mail, 4);
  g_assert_cmpint (tm_milter_wire_strings (packet.data + 16, packet.length - 16, strings, 8), ==, 1);
  g_assert_cmpstr (strings[0], ==, "i {auth_authen}");

  used = tm_milter_wire_next_packet (copy + offset, out->len - offset, 65536, &packet, NULL);
  g_assert_cmpint (used, >, 0);
  offset += (gsize) used;
  g_assert_cmpint (packet.command, ==, 'h');
  g_assert_cmpint (tm_milter_wire_strings (packet.data, packet.length, strings, 8), ==, 2);
  g_assert_cmpstr (strings[0], ==, "X-Ticket");
  g_assert_cmpstr (strings[1], ==, "");

  used = tm_milter_wire_next_packet (copy + offset, out->len - offset, 65536, &packet, NULL);
  g_assert_cmpint (used, >, 0);
  offset += (gsize) used;
  g_assert_cmpint (packet.command, ==, 'm');
  g_assert_cmpuint (packet.length, >=, 4);
  static const guint8 index3[] = { 0, 0, 0, 3 };
  g_assert_cmpmem (packet.data, 4, index3, 4);
  g_assert_cmpint (tm_milter_wire_strings (packet.data + 4, packet.length - 4, strings, 8), ==, 2);
  g_assert_cmpstr (strings[0], ==, "Subject");
  g_assert_cmpstr (strings[1], ==, "Re: x");

  used = tm_milter_wire_next_packet (copy + offset, out->len - offset, 65536, &packet, NULL);
  g_assert_cmpint (used, >, 0);
  offset += (gsize) used;
  g_assert_cmpint (packet.command, ==, '+');
  g_assert_cmpint (tm_milter_wire_strings (packet.data, packet.length, strings, 8), ==, 1);
  g_assert_cmpstr (strings[0], ==, "<new@example.org>");

  used = tm_milter_wire_next_packet (copy + offset, out->len - offset, 65536, &packet, NULL);
  g_assert_cmpint (used, >, 0);
  offset += (gsize) used;
  g_assert_cmpint (packet.command, ==, 'y');
  g_assert_cmpint (tm_milter_wire_strings (packet.data, packet.length, strings, 8), ==, 1);
  g_assert_cmpstr (strings[0], ==, "451 4.3.0 later");

  used = tm_milter_wire_next_packet (copy + offset, out->len - offset, 65536, &packet, NULL);
  g_assert_cmpint (used, ==, 5);
  offset += (gsize) used;
  g_assert_cmpint (packet.command, ==, 'c');
  g_assert_cmpuint (packet.length, ==, 0);

  g_assert_cmpuint (offset, ==, out->len);
  g_assert_cmpint (tm_milter_wire_next_packet (copy + offset, 0, 65536, &packet, NULL), ==, 0);
}

static void
test_round_trip_strings (void)
{
  /* Decoded strings encode back to the same bytes. */
  static const char data[] = "<a@example.org>\0\0SIZE=1\0";
  const char *strings[9] = { NULL };
  g_autofree guint8 *copy = exact_copy (data, sizeof data - 1);
  int count = tm_milter_wire_strings (copy, sizeof data - 1, strings, 8);
  g_assert_cmpint (count, ==, 3);
  strings[count] = NULL;
  g_autoptr (GByteArray) out = g_byte_array_new ();
  tm_milter_wire_append_strings (out, 'M', strings);
  g_assert_cmpuint (out->len, ==, 5 + sizeof data - 1);
  static const guint8 header[] = { 0, 0, 0, 25, 'M' };
  g_assert_cmpmem (out->data, 5, header, 5);
  g_assert_cmpmem (out->data + 5, out->len - 5, data, sizeof data - 1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/milter-wire/next-packet/incomplete-header", test_next_packet_incomplete_header);
  g_test_add_func ("/milter-wire/next-packet/incomplete-data", test_next_packet_incomplete_data);
  g_test_add_func ("/milter-wire/next-packet/exact", test_next_packet_exact);
  g_test_add_func ("/milter-wire/next-packet/command-only", test_next_packet_command_only);
  g_test_add_func ("/milter-wire/next-packet/two-back-to-back", test_next_packet_two_back_to_back);
  g_test_add_func ("/milter-wire/next-packet/length-zero", test_next_packet_length_zero);
  g_test_add_func ("/milter-wire/next-packet/over-max", test_next_packet_over_max);
  g_test_add_func ("/milter-wire/next-packet/max-boundary", test_next_packet_max_boundary);
  g_test_add_func ("/milter-wire/strings/empty", test_strings_empty);
  g_test_add_func ("/milter-wire/strings/one", test_strings_one);
  g_test_add_func ("/milter-wire/strings/several", test_strings_several);
  g_test_add_func ("/milter-wire/strings/missing-final-nul", test_strings_missing_final_nul);
  g_test_add_func ("/milter-wire/strings/too-many", test_strings_too_many);
  g_test_add_func ("/milter-wire/strings/empty-inside", test_strings_empty_inside);
  g_test_add_func ("/milter-wire/negotiation/short", test_negotiation_short);
  g_test_add_func ("/milter-wire/negotiation/big-endian", test_negotiation_big_endian);
  g_test_add_func ("/milter-wire/negotiation/extra-bytes-ignored",
                   test_negotiation_extra_bytes_ignored);
  g_test_add_func ("/milter-wire/append/no-data", test_append_no_data);
  g_test_add_func ("/milter-wire/append/data", test_append_data);
  g_test_add_func ("/milter-wire/append/strings", test_append_strings);
  g_test_add_func ("/milter-wire/append/strings-empty", test_append_strings_empty);
  g_test_add_func ("/milter-wire/append/change-header", test_append_change_header);
  g_test_add_func ("/milter-wire/append/negotiation-without-lists",
                   test_append_negotiation_without_lists);
  g_test_add_func ("/milter-wire/append/negotiation-with-lists", test_append_negotiation_with_lists);
  g_test_add_func ("/milter-wire/round-trip/packets", test_round_trip);
  g_test_add_func ("/milter-wire/round-trip/strings", test_round_trip_strings);
  return g_test_run ();
}
