package sklookup

//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -I../include" -target bpfel sklookup ../src/sklookup/sklookup.c
