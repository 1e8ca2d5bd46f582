%% Helpers on the Erlang side of the connection tests.
-module(erl_peb_conn_test).
-behaviour(gen_server).
-export([start_mirror/0, start_crashy/0, restart_crashy/0, binary/1, deep/1, stream/3, spawn_echoes/1]).
-export([init/1, handle_call/3, handle_cast/2]).

%% A process registered as erl_peb_mirror: for every {To, Msg} it receives, it sends Msg to To.
-spec start_mirror() -> {ok, pid()}.
start_mirror() ->
    Pid = spawn(fun mirror/0),
    true = register(erl_peb_mirror, Pid),
    {ok, Pid}.

mirror() ->
    receive
        {To, Msg} -> To ! Msg
    end,
    mirror().

%% A gen_server registered as erl_peb_crashy that exits with {crashed, Request} on any call.
-spec start_crashy() -> {ok, pid()}.
start_crashy() ->
    gen_server:start({local, erl_peb_crashy}, ?MODULE, [], []).

%% Stops erl_peb_crashy if it runs (waiting until it has), then starts it.
-spec restart_crashy() -> {ok, pid()}.
restart_crashy() ->
    catch gen_server:stop(erl_peb_crashy),
    start_crashy().

init([]) -> {ok, nostate}.
handle_call(Request, _From, _State) -> exit({crashed, Request}).
handle_cast(_Msg, State) -> {noreply, State}.

%% N bytes.
-spec binary(non_neg_integer()) -> binary().
binary(N) -> binary:copy(<<"x">>, N).

%% A list nested N deep: [[[...]]].
-spec deep(non_neg_integer()) -> list().
deep(0) -> [];
deep(N) -> [deep(N - 1)].

%% Sends To the integers 1..N, one every IntervalMs, from a process of its own.
-spec stream(pid(), pos_integer(), non_neg_integer()) -> pid().
stream(To, N, IntervalMs) ->
    spawn(fun() -> [begin timer:sleep(IntervalMs), To ! I end || I <- lists:seq(1, N)] end).

%% N unregistered processes that answer gen_server calls with the request.
-spec spawn_echoes(pos_integer()) -> [pid()].
spawn_echoes(N) -> [spawn(fun echo/0) || _ <- lists:seq(1, N)].

echo() ->
    receive
        {'$gen_call', {From, Tag}, Request} -> From ! {Tag, Request}
    end,
    echo().
