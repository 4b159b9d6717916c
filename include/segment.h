/*
 * libsegment: customer segmentation as an embeddable C library.
 * The only header users include.
 *
 * Threads: no mutable global state.  Separate seg_db handles may run on
 * separate threads; one seg_db and its children are used by one thread at a
 * time, and its error message is read before the next call on it.
 */
#ifndef SEGMENT_H
#define SEGMENT_H

#include "segment/core.h"
#include "segment/event.h"
#include "segment/customer.h"
#include "segment/storage.h"
#include "segment/rfm.h"
#include "segment/segdef.h"
#include "segment/clv.h"
#include "segment/outbox.h"
#include "segment/journey.h"
#include "segment/loyalty.h"

#endif /* SEGMENT_H */
