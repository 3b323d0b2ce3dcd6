/*
 * fcgi_config.h — what libfcgi's configure found, as seen by programs that include it
 * (fcgikit compat). Only platform facts true of every system fcgikit builds on are stated;
 * fcgio.h reads HAVE_STREAMBUF_CHAR_TYPE, fcgi_stdio.h users read HAVE_FPOS.
 */
#ifndef FCGIKIT_COMPAT_FCGI_CONFIG_H
#define FCGIKIT_COMPAT_FCGI_CONFIG_H

#define HAVE_ARPA_INET_H 1
#define HAVE_DLFCN_H 1
#define HAVE_FILENO_PROTO 1
#define HAVE_FPOS 1
#define HAVE_INTTYPES_H 1
#define HAVE_LIMITS_H 1
#define HAVE_NETDB_H 1
#define HAVE_NETINET_IN_H 1
#define HAVE_PTHREAD 1
#define HAVE_SOCKLEN 1
#define HAVE_STDINT_H 1
#define HAVE_STDIO_H 1
#define HAVE_STDLIB_H 1
#define HAVE_STREAMBUF_CHAR_TYPE 1
#define HAVE_STRERROR 1
#define HAVE_STRINGS_H 1
#define HAVE_STRING_H 1
#define HAVE_SYS_PARAM_H 1
#define HAVE_SYS_SOCKET_H 1
#define HAVE_SYS_STAT_H 1
#define HAVE_SYS_TIME_H 1
#define HAVE_SYS_TYPES_H 1
#define HAVE_UNISTD_H 1
#define STDC_HEADERS 1

/* The libfcgi release whose API this layer provides. */
#define PACKAGE "fcgi"
#define PACKAGE_NAME "fcgi"
#define PACKAGE_TARNAME "fcgi"
#define PACKAGE_VERSION "2.4.2"
#define PACKAGE_STRING "fcgi 2.4.2"
#define PACKAGE_BUGREPORT ""
#define PACKAGE_URL ""
#define VERSION "2.4.2"

/* Implemented by fcgikit rather than libfcgi. */
#define FCGIKIT_COMPAT 1

#endif
