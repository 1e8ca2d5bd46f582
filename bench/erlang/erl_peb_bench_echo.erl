%% A registered gen_server that answers every call with the request: what `npm run bench:rpc`
%% calls, from the addon and from the C program, to measure the connection rather than the server.
-module(erl_peb_bench_echo).
-behaviour(gen_server).
-export([start/0, init/1, handle_call/3, handle_cast/2]).

-spec start() -> {ok, pid()}.
start() ->
    gen_server:start({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, nostate}.
init([]) -> {ok, nostate}.

-spec handle_call(term(), gen_server:from(), nostate) -> {reply, term(), nostate}.
handle_call(Request, _From, State) -> {reply, Request, State}.

-spec handle_cast(term(), nostate) -> {noreply, nostate}.
handle_cast(_Msg, State) -> {noreply, State}.
