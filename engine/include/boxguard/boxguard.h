/* boxguard: the umbrella header. */
#ifndef BOXGUARD_H
#define BOXGUARD_H

#include "boxguard/err.h"
#include "boxguard/vfs.h"
#include "boxguard/store.h"
#include "boxguard/record.h"
#include "boxguard/registry.h"
#include "boxguard/box.h"
#include "boxguard/rekey.h"
#include "boxguard/queue.h"
#include "boxguard/migrate.h"
#include "boxguard/plan.h"
#include "boxguard/export.h"
#include "boxguard/validate.h"
#include "boxguard/erase.h"
#include "boxguard/audit.h"
#include "boxguard/backup.h"
#include "boxguard/guard.h"

#define BOXGUARD_VERSION "0.1.0"

#endif
