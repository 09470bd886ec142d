/* Hand-written C next to the protoc-c generated decoder (Sources/CONNXProto). */
#include "glmc_wire_check.h"
#include "onnx.pb-c.h"

#include <stdlib.h>

/* Reads a varint at data[*pos]; 0 on success. */
static int read_varint(const uint8_t *data, size_t len, size_t *pos, uint64_t *out) {
    uint64_t value = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= len) return -1;
        uint8_t b = data[(*pos)++];
        value |= (uint64_t)(b & 0x7F) << shift;
        if ((b & 0x80) == 0) { *out = value; return 0; }
    }
    return -1;
}

GlmcWireStatus glmc_protobuf_check_nesting(const ProtobufCMessageDescriptor *descriptor,
                                           const uint8_t *data, size_t len,
                                           unsigned max_depth, size_t *error_offset) {
    struct frame { const ProtobufCMessageDescriptor *descriptor; size_t end; };
    struct frame *stack = malloc(sizeof(struct frame) * ((size_t)max_depth + 1));
    if (stack == NULL) { *error_offset = 0; return GLMC_WIRE_MALFORMED; }
    unsigned depth = 0;
    stack[0].descriptor = descriptor;
    stack[0].end = len;
    size_t pos = 0;
    GlmcWireStatus status = GLMC_WIRE_OK;

    for (;;) {
        /* Close every message that ends here. */
        while (pos == stack[depth].end) {
            if (depth == 0) goto done;
            depth--;
        }
        size_t field_start = pos;
        uint64_t key;
        if (read_varint(data, stack[depth].end, &pos, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF) {
            *error_offset = field_start; status = GLMC_WIRE_MALFORMED; goto done;
        }
        unsigned number = (unsigned)(key >> 3);
        uint64_t scratch;
        switch (key & 7) {
        case 0: /* varint */
            if (read_varint(data, stack[depth].end, &pos, &scratch) != 0) {
                *error_offset = field_start; status = GLMC_WIRE_MALFORMED; goto done;
            }
            break;
        case 1: /* 64-bit */
            if (stack[depth].end - pos < 8) { *error_offset = field_start; status = GLMC_WIRE_MALFORMED; goto done; }
            pos += 8;
            break;
        case 5: /* 32-bit */
            if (stack[depth].end - pos < 4) { *error_offset = field_start; status = GLMC_WIRE_MALFORMED; goto done; }
            pos += 4;
            break;
        case 2: { /* length-delimited: bytes, string, packed scalars or an embedded message */
            uint64_t length;
            if (read_varint(data, stack[depth].end, &pos, &length) != 0 || length > stack[depth].end - pos) {
                *error_offset = field_start; status = GLMC_WIRE_MALFORMED; goto done;
            }
            const ProtobufCFieldDescriptor *field =
                stack[depth].descriptor ? protobuf_c_message_descriptor_get_field(stack[depth].descriptor, number) : NULL;
            if (field != NULL && field->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth == max_depth) { *error_offset = field_start; status = GLMC_WIRE_TOO_DEEP; goto done; }
                depth++;
                stack[depth].descriptor = field->descriptor;
                stack[depth].end = pos + (size_t)length;
            } else {
                pos += (size_t)length;
            }
            break;
        }
        default: /* groups (3, 4) and reserved wire types: ONNX uses none */
            *error_offset = field_start; status = GLMC_WIRE_MALFORMED; goto done;
        }
    }
done:
    free(stack);
    return status;
}

GlmcWireStatus glmc_onnx_model_check_nesting(const uint8_t *data, size_t len,
                                             unsigned max_depth, size_t *error_offset)
{
    return glmc_protobuf_check_nesting(&onnx__model_proto__descriptor, data, len, max_depth, error_offset);
}
