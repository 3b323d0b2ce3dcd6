/* fcgimisc.h — the small helper macros libfcgi programs pick up from fcgimisc.h
 * (fcgikit compat). Each is defined only when the program has not defined it already. */
#ifndef _FCGIMISC_H
#define _FCGIMISC_H

#ifndef FALSE
#define FALSE (0)
#endif
#ifndef TRUE
#define TRUE (1)
#endif

#ifndef min
#define min(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef max
#define max(a, b) ((a) > (b) ? (a) : (b))
#endif

#ifndef ASSERT
#include <assert.h>
#define ASSERT(assertion) assert(assertion)
#endif

#endif /* _FCGIMISC_H */
