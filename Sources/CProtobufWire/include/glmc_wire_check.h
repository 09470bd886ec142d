/* Hand-written C next to the protoc-c generated decoder (Sources/CONNXProto). */
#ifndef GLMC_WIRE_CHECK_H
#define GLMC_WIRE_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

PROTOBUF_C__BEGIN_DECLS

/* Outcome of glmc_protobuf_check_nesting. */
typedef enum {
    GLMC_WIRE_OK = 0,
    /* The bytes are not well-formed protobuf wire format (bad varint, length past the end,
       field number 0, group or reserved wire types). */
    GLMC_WIRE_MALFORMED = 1,
    /* Messages nest deeper than the limit. */
    GLMC_WIRE_TOO_DEEP = 2,
} GlmcWireStatus;

/* Walks `len` bytes of a serialized message of type `descriptor` without allocating or recursing,
   and checks that embedded messages nest at most `max_depth` levels below the top one.
   protobuf-c's unpacker recurses once per level with no limit, so a small hostile file can
   overflow the stack; call this first. On failure `*error_offset` is the byte offset where the
   problem was found. */
GlmcWireStatus glmc_protobuf_check_nesting(const ProtobufCMessageDescriptor *descriptor,
                                           const uint8_t *data, size_t len,
                                           unsigned max_depth, size_t *error_offset);

/* The same check for an ONNX ModelProto (the descriptor lives in the CONNXProto target; taking its
   address here keeps Swift from ever holding a pointer to a copy of it). */
GlmcWireStatus glmc_onnx_model_check_nesting(const uint8_t *data, size_t len,
                                             unsigned max_depth, size_t *error_offset);

PROTOBUF_C__END_DECLS

#endif
