// fcgio.h — C++ iostreams over FCGX streams, as libfcgi++ provides them (fcgikit compat).
//
//     FCGX_Request req; FCGX_Init(); FCGX_InitRequest(&req, 0, 0);
//     while (FCGX_Accept_r(&req) == 0) {
//         fcgi_streambuf out(req.out);
//         std::ostream os(&out);
//         os << "Content-Type: text/plain\r\n\r\nhello\n";
//     }
//
// Link with -lfcgikit-compat++ (the drop-in libfcgi++.so.0 exists too). The classes keep
// libfcgi++'s layout and virtual functions, so binaries built against libfcgi++ run on it.
#ifndef FCGIO_H
#define FCGIO_H

#include <iostream>

#include "fcgiapp.h"

#ifndef DLLAPI
#define DLLAPI
#endif

// libfcgi's header names char_type globally unless fcgi_config.h said the library has it.
#if !HAVE_STREAMBUF_CHAR_TYPE
typedef char char_type;
#endif

// A streambuf reading from or writing to one FCGX_Stream. Unbuffered by default: every
// operation goes straight to the FCGX stream, which has its own buffer. With a buffer
// (the (fcgx, buf, len) constructor or setbuf) peek/unget/putback work, and output must be
// flushed (sync, or destroying the streambuf) before the request is finished.
class DLLAPI fcgi_streambuf : public std::streambuf
{
public:
	fcgi_streambuf(FCGX_Stream *fcgx, char *buf, int len);
	fcgi_streambuf(char_type *buf, std::streamsize len);
	fcgi_streambuf(FCGX_Stream *fcgx = 0);
	~fcgi_streambuf(void);

	// Points the streambuf at another stream (e.g. the next request's); returns 0.
	int attach(FCGX_Stream *fcgx);

protected:
	virtual int overflow(int);
	virtual int sync();
	virtual int uflow();
	virtual int underflow();
	virtual std::streambuf *setbuf(char_type *buf, std::streamsize len);
	virtual std::streamsize xsgetn(char_type *s, std::streamsize n);
	virtual std::streamsize xsputn(const char_type *s, std::streamsize n);

private:
	FCGX_Stream *fcgx;
	char_type *buf;
	std::streamsize bufsize;

	void init(FCGX_Stream *fcgx, char_type *buf, std::streamsize bufsize);
	void reset(void);
};

// An istream on an FCGX stream (libfcgi calls it deprecated; std::istream over an
// fcgi_streambuf does the same).
class DLLAPI fcgi_istream : public std::istream
{
public:
	fcgi_istream(FCGX_Stream *fcgx = 0);
	~fcgi_istream(void) {}
	virtual void attach(FCGX_Stream *fcgx);

private:
	fcgi_streambuf fcgi_strmbuf;
};

// An ostream on an FCGX stream (deprecated likewise).
class DLLAPI fcgi_ostream : public std::ostream
{
public:
	fcgi_ostream(FCGX_Stream *fcgx = 0);
	~fcgi_ostream(void) {}
	virtual void attach(FCGX_Stream *fcgx);

private:
	fcgi_streambuf fcgi_strmbuf;
};

#endif // FCGIO_H
