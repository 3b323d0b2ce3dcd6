// fcgio.cc — fcgi_streambuf, fcgi_istream and fcgi_ostream over FCGX streams (see fcgio.h).
//
// Unbuffered (the default), every streambuf operation maps to one FCGX call: the FCGX stream
// has its buffer already. With a buffer, it serves as the get area of an input streambuf or
// the put area of an output one (a streambuf is used for one direction).
#include <climits>
#include <cstdio>

#include "fcgio.h"

typedef std::char_traits<char> traits;

fcgi_streambuf::fcgi_streambuf(FCGX_Stream *fs, char *b, int len) { init(fs, b, len); }

fcgi_streambuf::fcgi_streambuf(char_type *b, std::streamsize len) { init(0, b, len); }

fcgi_streambuf::fcgi_streambuf(FCGX_Stream *fs) { init(fs, 0, 0); }

fcgi_streambuf::~fcgi_streambuf(void) { overflow(EOF); }

void fcgi_streambuf::init(FCGX_Stream *fs, char_type *b, std::streamsize bs)
{
	fcgx = fs;
	buf = 0;
	bufsize = 0;
	setbuf(b, bs);
}

void fcgi_streambuf::reset(void)
{
	setg(buf, buf + bufsize, buf + bufsize); // nothing read ahead yet
	setp(buf, buf + bufsize);
}

int fcgi_streambuf::attach(FCGX_Stream *fs)
{
	fcgx = fs;
	reset();
	return 0;
}

int fcgi_streambuf::overflow(int c)
{
	if (bufsize) {
		int n = static_cast<int>(pptr() - pbase());
		if (n) {
			if (!fcgx || FCGX_PutStr(pbase(), n, fcgx) != n)
				return EOF;
			pbump(-n);
		}
	}
	if (c != EOF && (!fcgx || FCGX_PutChar(c, fcgx) == EOF))
		return EOF;
	return 0;
}

int fcgi_streambuf::sync()
{
	if (overflow(EOF) == EOF)
		return -1;
	if (fcgx && FCGX_FFlush(fcgx) == EOF)
		return -1;
	return 0;
}

int fcgi_streambuf::underflow()
{
	if (!bufsize) {
		// Peek: read one byte and push it back (the FCGX stream guarantees one byte).
		int c = fcgx ? FCGX_GetChar(fcgx) : EOF;
		if (c != EOF)
			FCGX_UnGetChar(c, fcgx);
		return c;
	}
	if (gptr() < egptr())
		return traits::to_int_type(*gptr());
	int n = fcgx ? FCGX_GetStr(buf, static_cast<int>(bufsize), fcgx) : 0;
	if (n <= 0)
		return EOF;
	setg(buf, buf, buf + n);
	return traits::to_int_type(*gptr());
}

int fcgi_streambuf::uflow()
{
	if (!bufsize)
		return fcgx ? FCGX_GetChar(fcgx) : EOF;
	int c = underflow();
	if (c != EOF)
		gbump(1);
	return c;
}

std::streambuf *fcgi_streambuf::setbuf(char_type *b, std::streamsize len)
{
	if (bufsize)
		overflow(EOF); // what the old buffer holds must not be lost
	if (b && len > 0 && len <= INT_MAX) {
		buf = b;
		bufsize = len;
	} else {
		buf = 0;
		bufsize = 0;
	}
	reset();
	return this;
}

std::streamsize fcgi_streambuf::xsgetn(char_type *s, std::streamsize n)
{
	if (bufsize)
		return std::streambuf::xsgetn(s, n);
	std::streamsize got = 0;
	while (fcgx && got < n) {
		int want = n - got > INT_MAX ? INT_MAX : static_cast<int>(n - got);
		int k = FCGX_GetStr(s + got, want, fcgx);
		if (k > 0)
			got += k;
		if (k < want)
			break;
	}
	return got;
}

std::streamsize fcgi_streambuf::xsputn(const char_type *s, std::streamsize n)
{
	if (bufsize)
		return std::streambuf::xsputn(s, n);
	std::streamsize put = 0;
	while (fcgx && put < n) {
		int want = n - put > INT_MAX ? INT_MAX : static_cast<int>(n - put);
		if (FCGX_PutStr(s + put, want, fcgx) != want)
			break;
		put += want;
	}
	return put;
}

// The base is given the member's address before the member is built: it only stores it.
fcgi_istream::fcgi_istream(FCGX_Stream *fs) : std::istream(&fcgi_strmbuf), fcgi_strmbuf(fs) {}

void fcgi_istream::attach(FCGX_Stream *fs)
{
	fcgi_strmbuf.attach(fs);
	clear();
}

fcgi_ostream::fcgi_ostream(FCGX_Stream *fs) : std::ostream(&fcgi_strmbuf), fcgi_strmbuf(fs) {}

void fcgi_ostream::attach(FCGX_Stream *fs)
{
	fcgi_strmbuf.attach(fs);
	clear();
}
