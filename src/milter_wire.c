/* milter_wire.c - the milter protocol's packets (see milter_wire.h). */
#include "autoconfig.h"

#include <string.h>

#include "milter_wire.h"

G_DEFINE_QUARK (tm-milter-wire-error-quark, tm_milter_wire_error)

static guint32
read_uint32 (const guint8 *bytes)
{
  return ((guint32) bytes[0] << 24) | ((guint32) bytes[1] << 16) | ((guint32) bytes[2] << 8)
         | (guint32) bytes[3];
}

static void
append_uint32 (GByteArray *out, guint32 value)
{
  guint8 bytes[4] = { (guint8) (value >> 24), (guint8) (value >> 16), (guint8) (value >> 8),
                      (guint8) value };
  g_byte_array_append (out, bytes, 4);
}

gssize
tm_milter_wire_next_packet (const guint8 *buffer, gsize available, gsize max_data,
                            TmMilterPacket *packet, GError **error)
{
  if (available < 4)
    return 0;
  guint32 length = read_uint32 (buffer);
  /* The length counts the command byte, so 0 is no packet at all. */
  if (length == 0 || length - 1 > max_data)
    {
      g_set_error (error, TM_MILTER_WIRE_ERROR, 0,
                   "the MTA sent a packet of %" G_GUINT32_FORMAT " bytes (at most %" G_GSIZE_FORMAT
                   " allowed)", length, max_data + 1);
      return -1;
    }
  if (available - 4 < length)
    return 0;
  packet->command = (char) buffer[4];
  packet->data = buffer + 5;
  packet->length = length - 1;
  return (gssize) length + 4;
}

int
tm_milter_wire_strings (const guint8 *data, gsize length, const char **strings, int max_strings)
{
  if (length == 0)
    return 0;
  if (data[length - 1] != '\0')
    return -1;
  int count = 0;
  gsize start = 0;
  while (start < length)
    {
      if (count == max_strings)
        return -1;
      const guint8 *end = memchr (data + start, '\0', length - start);
      /* Cannot be NULL: the last byte is a NUL. */
      strings[count++] = (const char *) data + start;
      start = (gsize) (end - data) + 1;
    }
  return count;
}

gboolean
tm_milter_wire_negotiation (const guint8 *data, gsize length, guint32 *version, guint32 *actions,
                            guint32 *steps)
{
  if (length < 12)
    return FALSE;
  *version = read_uint32 (data);
  *actions = read_uint32 (data + 4);
  *steps = read_uint32 (data + 8);
  return TRUE;
}

void
tm_milter_wire_append (GByteArray *out, char command, const void *data, gsize length)
{
  g_return_if_fail (length < G_MAXUINT32);
  append_uint32 (out, (guint32) length + 1);
  g_byte_array_append (out, (const guint8 *) &command, 1);
  if (length > 0)
    g_byte_array_append (out, data, (guint) length);
}

void
tm_milter_wire_append_strings (GByteArray *out, char command, const char *const *strings)
{
  gsize length = 0;
  for (const char *const *s = strings; *s != NULL; s++)
    length += strlen (*s) + 1;
  append_uint32 (out, (guint32) length + 1);
  g_byte_array_append (out, (const guint8 *) &command, 1);
  for (const char *const *s = strings; *s != NULL; s++)
    g_byte_array_append (out, (const guint8 *) *s, (guint) strlen (*s) + 1);
}

void
tm_milter_wire_append_change_header (GByteArray *out, guint32 index, const char *name,
                                     const char *value)
{
  gsize length = 4 + strlen (name) + 1 + strlen (value) + 1;
  append_uint32 (out, (guint32) length + 1);
  g_byte_array_append (out, (const guint8 *) "m", 1);
  append_uint32 (out, index);
  g_byte_array_append (out, (const guint8 *) name, (guint) strlen (name) + 1);
  g_byte_array_append (out, (const guint8 *) value, (guint) strlen (value) + 1);
}

void
tm_milter_wire_append_negotiation (GByteArray *out, guint32 version, guint32 actions,
                                   guint32 steps, const char *const *macro_lists)
{
  gsize length = 12;
  for (int stage = 0; macro_lists != NULL && stage < TM_MILTER_STAGES; stage++)
    if (macro_lists[stage] != NULL)
      length += 4 + strlen (macro_lists[stage]) + 1;
  append_uint32 (out, (guint32) length + 1);
  g_byte_array_append (out, (const guint8 *) "O", 1);
  append_uint32 (out, version);
  append_uint32 (out, actions);
  append_uint32 (out, steps);
  for (int stage = 0; macro_lists != NULL && stage < TM_MILTER_STAGES; stage++)
    if (macro_lists[stage] != NULL)
      {
        append_uint32 (out, (guint32) stage);
        g_byte_array_append (out, (const guint8 *) macro_lists[stage],
                             (guint) strlen (macro_lists[stage]) + 1);
      }
}
