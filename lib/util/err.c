/* err.c — error names and texts, generated from FCGI_ERRNO_MAP. */
#include "fcgikit.h"

FCGI_EXPORT const char *fcgi_strerror(int err)
{
	switch (err) {
	case FCGI_OK:
		return "success";
#define FK_ERR_TEXT_(name, code, text)                                                             \
	case code:                                                                                 \
		return text;
		FCGI_ERRNO_MAP(FK_ERR_TEXT_)
#undef FK_ERR_TEXT_
	}
	return "unknown error";
}

FCGI_EXPORT const char *fcgi_err_name(int err)
{
	switch (err) {
	case FCGI_OK:
		return "FCGI_OK";
#define FK_ERR_NAME_(name, code, text)                                                             \
	case code:                                                                                 \
		return "FCGI_" #name;
		FCGI_ERRNO_MAP(FK_ERR_NAME_)
#undef FK_ERR_NAME_
	}
	return "FCGI_EUNKNOWN";
}

FCGI_EXPORT const char *fcgi_version(void) { return FCGIKIT_VERSION_STRING; }
