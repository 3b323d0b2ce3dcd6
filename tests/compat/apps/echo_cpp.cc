// echo_cpp — the fcgio.h way, after libfcgi's echo-cpp example: std::cin and std::cout are
// pointed at fcgi_streambufs for each request accepted with FCGX_Accept_r.
//
// The echo contract (see echo.c); the body is read with std::cin.read. With COMPAT_TEST=istream
// the body is read word by word through an fcgi_istream and answered one word per line
// through an fcgi_ostream.
#include <cstring>
#include <fcgio.h>
#include <iostream>
#include <string>

int main(void)
{
	std::streambuf *cin_orig = std::cin.rdbuf();
	std::streambuf *cout_orig = std::cout.rdbuf();
	FCGX_Request request;

	FCGX_Init();
	FCGX_InitRequest(&request, 0, 0);

	while (FCGX_Accept_r(&request) == 0) {
		fcgi_streambuf cin_fcgi(request.in);
		fcgi_streambuf cout_fcgi(request.out);
		std::cin.rdbuf(&cin_fcgi);
		std::cout.rdbuf(&cout_fcgi);
		std::cin.clear();

		const char *method = FCGX_GetParam("REQUEST_METHOD", request.envp);
		const char *query = FCGX_GetParam("QUERY_STRING", request.envp);
		const char *test = FCGX_GetParam("COMPAT_TEST", request.envp);

		std::cout << "Status: 200 OK\r\n"
		          << "Content-Type: application/octet-stream\r\n"
		          << "X-Request-Method: " << (method ? method : "") << "\r\n"
		          << "X-Query: " << (query ? query : "") << "\r\n"
		          << "\r\n";
		if (test && !std::strcmp(test, "istream")) {
			fcgi_istream in(request.in);
			fcgi_ostream out(request.out);
			std::string word;
			while (in >> word)
				out << word << "\n";
			out.flush();
		} else {
			char buf[8192];
			while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0)
				std::cout.write(buf, std::cin.gcount());
		}
		std::cout.flush();
	}
	std::cin.rdbuf(cin_orig);
	std::cout.rdbuf(cout_orig);
	return 0;
}
