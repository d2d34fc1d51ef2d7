/* decision_json.c - the JSON that ticketctl prints, built with json-glib.
 *
 * Times are printed as ISO 8601 in UTC ("2026-11-23T09:30:00Z"), absent
 * values as null rather than missing keys, so scripts can rely on the shape.
 */
#include "decision_json.h"

#include "message.h"

static void
add_string_or_null (JsonBuilder *builder, const char *name, const char *value)
{
  json_builder_set_member_name (builder, name);
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

static void
add_string_array (JsonBuilder *builder, const char *name, char *const *values, guint count)
{
  json_builder_set_member_name (builder, name);
  json_builder_begin_array (builder);
  for (guint i = 0; i < count; i++)
    json_builder_add_string_value (builder, values[i]);
  json_builder_end_array (builder);
}

static void
add_time (JsonBuilder *builder, const char *name, gint64 unix_time)
{
  g_autoptr (GDateTime) time = g_date_time_new_from_unix_utc (unix_time);
  g_autofree char *text = time != NULL ? g_date_time_format_iso8601 (time) : NULL;
  add_string_or_null (builder, name, text);
}

JsonNode *
tm_decision_to_json (const TmDecision *decision)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  const TmClassification *classification = &decision->classification;

  json_builder_begin_object (builder);
  add_string_or_null (builder, "class", tm_class_name (classification->klass));
  add_string_or_null (builder, "reason", classification->reason);
  add_string_or_null (builder, "queue",
                      classification->queue != NULL ? classification->queue->name : NULL);

  json_builder_set_member_name (builder, "ticket");
  if (decision->ticket_id != 0)
    {
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "id");
      json_builder_add_int_value (builder, decision->ticket_id);
      json_builder_set_member_name (builder, "new");
      json_builder_add_boolean_value (builder, decision->ticket_new);
      json_builder_set_member_name (builder, "duplicate");
      json_builder_add_boolean_value (builder, decision->duplicate);
      add_string_or_null (builder, "status", decision->status);
      add_string_or_null (builder, "priority", decision->priority);
      add_string_or_null (builder, "team", decision->team);
      add_string_array (builder, "tags", decision->tags, g_strv_length (decision->tags));
      add_string_or_null (builder, "language", decision->language);
      if (decision->language_source != NULL)
        add_string_or_null (builder, "language_source", decision->language_source);
      json_builder_end_object (builder);
    }
  else
    json_builder_add_null_value (builder);

  add_string_or_null (builder, "threaded_by", tm_threaded_by_name (decision->threaded_by));
  if (decision->ignored_tag != 0)
    {
      json_builder_set_member_name (builder, "ignored_tag");
      json_builder_add_int_value (builder, decision->ignored_tag);
    }

  json_builder_set_member_name (builder, "autoreply");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "send");
  json_builder_add_boolean_value (builder, decision->autoreply_send);
  add_string_or_null (builder, "template", decision->autoreply_template);
  add_string_or_null (builder, "language", decision->autoreply_language);
  add_string_or_null (builder, "reason", decision->autoreply_reason);
  if (decision->autoreply_send)
    {
      add_string_or_null (builder, "to", decision->customer_address);
      if (decision->autoreply_message_id != NULL)
        add_string_or_null (builder, "message_id", decision->autoreply_message_id);
    }
  json_builder_end_object (builder);

  /* The rules that matched (a new ticket's mail only). */
  json_builder_set_member_name (builder, "rules");
  json_builder_begin_array (builder);
  for (guint i = 0; decision->rules.matches != NULL && i < decision->rules.matches->len; i++)
    {
      const TmRuleMatch *match = g_ptr_array_index (decision->rules.matches, i);
      json_builder_begin_object (builder);
      add_string_or_null (builder, "rule", match->rule);
      add_string_or_null (builder, "field", match->field);
      add_string_or_null (builder, "text", match->text);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  if (decision->reply_to != NULL)
    add_string_or_null (builder, "reply_to", decision->reply_to);

  json_builder_set_member_name (builder, "recipients");
  json_builder_begin_object (builder);
  add_string_array (builder, "add", (char **) decision->recipients_add->pdata,
                    decision->recipients_add->len);
  add_string_array (builder, "remove", (char **) decision->recipients_remove->pdata,
                    decision->recipients_remove->len);
  json_builder_end_object (builder);

  json_builder_set_member_name (builder, "headers");
  json_builder_begin_object (builder);
  for (guint i = 0; i < decision->headers->len; i++)
    {
      const TmHeaderChange *change = g_ptr_array_index (decision->headers, i);
      json_builder_set_member_name (builder, change->name);
      json_builder_add_string_value (builder, change->value);
    }
  json_builder_end_object (builder);

  add_string_or_null (builder, "subject", decision->subject);
  json_builder_set_member_name (builder, "truncated");
  json_builder_add_boolean_value (builder, decision->truncated);
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

static void
add_ticket_members (JsonBuilder *builder, const TmTicket *ticket)
{
  json_builder_set_member_name (builder, "id");
  json_builder_add_int_value (builder, ticket->id);
  add_string_or_null (builder, "queue", ticket->queue);
  add_string_or_null (builder, "customer_address", ticket->customer_address);
  add_string_or_null (builder, "customer_name", ticket->customer_name);
  add_string_or_null (builder, "subject", ticket->subject);
  add_string_or_null (builder, "status", ticket->status);
  add_string_or_null (builder, "priority", ticket->priority);
  add_string_or_null (builder, "team", ticket->team);
  add_string_or_null (builder, "assignee", ticket->assignee);
  add_string_or_null (builder, "language", ticket->language);
  add_string_array (builder, "tags", ticket->tags, g_strv_length (ticket->tags));
  add_time (builder, "created_at", ticket->created_at);
  add_time (builder, "updated_at", ticket->updated_at);
}

JsonNode *
tm_ticket_to_json (const TmTicket *ticket)
{
  return tm_ticket_with_messages_to_json (ticket, NULL, NULL);
}

static void
add_message (JsonBuilder *builder, const TmStoredMessage *message)
{
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_int_value (builder, message->id);
  add_string_or_null (builder, "message_id", message->message_id);
  add_string_or_null (builder, "direction", message->direction);
  add_string_or_null (builder, "sender", message->sender);
  add_string_or_null (builder, "from_address", message->from_address);
  add_string_or_null (builder, "from_name", message->from_name);
  add_string_or_null (builder, "subject", message->subject);
  add_string_or_null (builder, "mta_queue_id", message->mta_queue_id);
  add_time (builder, "received_at", message->received_at);
  json_builder_set_member_name (builder, "size");
  json_builder_add_int_value (builder, (gint64) message->size);
  json_builder_set_member_name (builder, "truncated");
  json_builder_add_boolean_value (builder, message->truncated);
  g_auto (GStrv) warnings = g_strsplit (message->warnings != NULL ? message->warnings : "", "\n", -1);
  add_string_array (builder, "warnings", warnings,
                    message->warnings != NULL ? g_strv_length (warnings) : 0);
  json_builder_set_member_name (builder, "attachments");
  json_builder_begin_array (builder);
  for (guint i = 0; message->attachments != NULL && i < message->attachments->len; i++)
    {
      const TmAttachment *attachment = g_ptr_array_index (message->attachments, i);
      json_builder_begin_object (builder);
      add_string_or_null (builder, "filename", attachment->filename);
      add_string_or_null (builder, "content_type", attachment->content_type);
      json_builder_set_member_name (builder, "size");
      json_builder_add_int_value (builder, (gint64) attachment->size);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  add_string_or_null (builder, "body", message->body_text);
  json_builder_end_object (builder);
}

JsonNode *
tm_ticket_with_messages_to_json (const TmTicket *ticket, const GPtrArray *messages,
                                 const GPtrArray *events)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  json_builder_begin_object (builder);
  add_ticket_members (builder, ticket);
  if (messages != NULL)
    {
      json_builder_set_member_name (builder, "messages");
      json_builder_begin_array (builder);
      for (guint i = 0; i < messages->len; i++)
        add_message (builder, g_ptr_array_index (messages, i));
      json_builder_end_array (builder);
    }
  if (events != NULL)
    {
      json_builder_set_member_name (builder, "events");
      json_builder_begin_array (builder);
      for (guint i = 0; i < events->len; i++)
        {
          const TmEvent *event = g_ptr_array_index (events, i);
          json_builder_begin_object (builder);
          add_string_or_null (builder, "kind", event->kind);
          add_time (builder, "at", event->at);
          add_string_or_null (builder, "detail", event->detail);
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
    }
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

JsonNode *
tm_outbox_mail_to_json (const TmOutboxMail *mail)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_int_value (builder, mail->id);
  json_builder_set_member_name (builder, "ticket");
  json_builder_add_int_value (builder, mail->ticket_id);
  add_string_or_null (builder, "queue", mail->queue);
  add_string_or_null (builder, "kind", mail->kind);
  add_string_or_null (builder, "status", mail->status);
  json_builder_set_member_name (builder, "attempts");
  json_builder_add_int_value (builder, mail->attempts);
  add_string_or_null (builder, "to", mail->recipient);
  add_string_or_null (builder, "message_id", mail->message_id);
  add_time (builder, "created_at", mail->created_at);
  if (mail->done_at != 0)
    add_time (builder, "done_at", mail->done_at);
  add_string_or_null (builder, "origin_queue_id", mail->origin_queue_id);
  add_string_or_null (builder, "last_result", mail->last_result);
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

char *
tm_json_to_string (JsonNode *node, gboolean pretty)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  json_generator_set_pretty (generator, pretty);
  json_generator_set_indent (generator, 2);
  json_generator_set_root (generator, node);
  g_autofree char *text = json_generator_to_data (generator, NULL);
  return g_strconcat (text, "\n", NULL);
}
