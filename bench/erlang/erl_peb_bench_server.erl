%% The timed loops of `npm run bench:server', run inside the session server's node so that what is
%% measured is the server (its gen_server, its table, its sweep), not a client connection.
%% bench/server.ts starts the node and the server, calls these functions one at a time, and prints
%% the tables. Each function returns a map, which json/1 turns into a binary for the script.
%%
%% Paths timed (erlang/README.md, "The Erlang API"):
%%   get_direct  erl_peb:get/1: reads the table in the caller's process, no message;
%%   get_call    erl_peb:call({get, Id}): the gen_server call a remote client's `{get, Id}' takes;
%%   set         erl_peb:set/3: the gen_server call of `{set, Id, Data, Ttl}' (ETS: written by the
%%               server; Mnesia: a sync_transaction in the server's worker for that id).
-module(erl_peb_bench_server).

-include("erl_peb.hrl").

-export([parallelism/0, session_payload/0, binary_payload/0, populate/2, ops/3, memory/2, sweep/1, json/1]).

-define(IDS, {?MODULE, ids}).
%% Warm-up of every throughput run before its timed window.
-define(WARMUP_MS, 200).
%% Pause between two reads of a paced reader (a light read load, not a saturating one).
-define(READ_PACE_MS, 1).
%% Records per write while filling the table for the sweep.
-define(CHUNK, 1000).

%% --- the machine ---------------------------------------------------------------------------------

%% How much more work two processes get done than one in the same time (2.0: two free cores):
%% the ceiling of any gain from concurrent callers on this machine.
-spec parallelism() -> map().
parallelism() ->
    Work = fun() -> spin(30000000) end,
    T1 = timed(fun() -> parallel(1, fun(_) -> Work() end) end),
    T2 = timed(fun() -> parallel(2, fun(_) -> Work() end) end),
    #{schedulers => erlang:system_info(schedulers_online), one_ms => T1, two_ms => T2,
      speedup => 2 * T1 / T2}.

spin(0) -> ok;
spin(N) -> _ = erlang:phash2(N), spin(N - 1).

timed(Fun) ->
    T0 = erlang:monotonic_time(),
    _ = Fun(),
    ms_since(T0).

%% --- payloads ----------------------------------------------------------------------------------

%% A session as the Node stores send it (a map with binary keys, in the shape of an
%% express-session object: cookie, user, a cart), padded with short fields to 1024 bytes in the
%% external term format. Every binary in it is at most 64 bytes, so it is copied whole into the
%% table, as a session decoded from the network would be.
-spec session_payload() -> map().
session_payload() ->
    Item = fun(I) -> #{<<"sku">> => <<"SKU-", (integer_to_binary(I))/binary>>, <<"qty">> => I + 1,
                       <<"price">> => 9.99 * (I + 1)} end,
    Base = #{<<"cookie">> => #{<<"originalMaxAge">> => 86400000,
                               <<"expires">> => <<"2026-11-26T18:00:00.000Z">>,
                               <<"httpOnly">> => true, <<"path">> => <<"/">>,
                               <<"secure">> => false, <<"sameSite">> => <<"lax">>},
             <<"userId">> => 123456,
             <<"user">> => #{<<"name">> => <<"Alice Example">>,
                             <<"email">> => <<"alice@example.com">>,
                             <<"roles">> => [<<"admin">>, <<"editor">>, <<"viewer">>]},
             <<"cart">> => [Item(I) || I <- lists:seq(0, 7)],
             <<"csrf">> => binary:copy(<<"a">>, 43),
             <<"visits">> => 42},
    pad(Base, 0).

pad(Map, I) ->
    Size = byte_size(term_to_binary(Map)),
    Key = <<"f", (integer_to_binary(I))/binary>>,
    %% A new field costs its key, its value and about 6 bytes of headers.
    Room = 1024 - Size - byte_size(Key) - 6,
    if
        Room =< 0 -> Map;
        Room =< 48 -> fix(Map#{Key => binary:copy(<<"x">>, Room)}, Key);
        true -> pad(Map#{Key => binary:copy(<<"x">>, 48)}, I + 1)
    end.

%% Trims or grows the last field by the few bytes the estimate missed.
fix(Map, Key) ->
    case 1024 - byte_size(term_to_binary(Map)) of
        0 -> Map;
        D -> fix(Map#{Key => binary:copy(<<"x">>, byte_size(maps:get(Key, Map)) + D)}, Key)
    end.

%% 1024 random bytes: a reference-counted binary, kept outside the table (the table holds a
%% reference to it).
-spec binary_payload() -> binary().
binary_payload() ->
    crypto:strong_rand_bytes(1024).

%% A session id as web frameworks make them: 32 characters (a 4-character prefix, 28 digits).
%% (iolist_to_binary/1: a 32-byte heap binary, as an id decoded from the network is, where
%% appending to a binary would give a reference into a larger off-heap one.)
id(Prefix, I) ->
    iolist_to_binary([Prefix, integer_to_binary(I + 1000000000000000000000000000)]).

%% --- throughput ----------------------------------------------------------------------------------

%% Clears the store and writes N sessions through the server (erl_peb:set/3, 16 callers), whose
%% ids the throughput runs use.
-spec populate(pos_integer(), session | binary) -> map().
populate(N, Kind) ->
    ok = erl_peb:clear(),
    Ids = list_to_tuple([id(<<"live">>, I) || I <- lists:seq(1, N)]),
    persistent_term:put(?IDS, Ids),
    T0 = erlang:monotonic_time(),
    parallel(16, fun(W) ->
        Data = payload(Kind),
        [{ok, _} = erl_peb:set(element(I, Ids), Data, default) || I <- lists:seq(W, N, 16)]
    end),
    #{sessions => N, ms => ms_since(T0), payload_bytes => byte_size(term_to_binary(payload(Kind)))}.

payload(session) -> session_payload();
payload(binary) -> binary_payload().

%% Operations per second of one path from Callers processes, each in a closed loop, over Rounds
%% consecutive windows of WindowMs after a warm-up; the median window is the figure. An
%% operation counts in the window in which it completes.
-spec ops(get_direct | get_call | set, pos_integer(), {pos_integer(), pos_integer()}) -> map().
ops(Op, Callers, {Rounds, WindowMs}) ->
    Ids = persistent_term:get(?IDS),
    N = tuple_size(Ids),
    Data = session_payload(),
    Start = erlang:monotonic_time(millisecond) + ?WARMUP_MS + 20,
    Window = {Start, WindowMs, Rounds},
    PerCaller = parallel(Callers, fun(W) ->
        %% Callers start at spread-out ids and step through them, so they rarely meet on one id.
        loop(Op, Ids, N, (W * 7919) rem N, Data, Window, 0, 0, [])
    end),
    PerRound = [lists:sum(Col) || Col <- transpose(PerCaller)],
    PerSecond = [C * 1000 / WindowMs || C <- PerRound],
    #{op => Op, callers => Callers, window_ms => WindowMs, rounds => PerSecond,
      ops_per_s => lists:nth((Rounds + 1) div 2, lists:sort(PerSecond))}.

%% Counts, per window, the operations completed in it; returns the Rounds counts.
loop(Op, Ids, N, I, Data, {Start, WindowMs, Rounds} = Window, Win, Count, Acc) ->
    {ok, _, _, _} = run_op(Op, element(1 + I, Ids), Data),
    Now = erlang:monotonic_time(millisecond),
    Next = (I + 31) rem N,
    if
        Now < Start ->
            loop(Op, Ids, N, Next, Data, Window, 0, 0, Acc);
        true ->
            case (Now - Start) div WindowMs of
                Win -> loop(Op, Ids, N, Next, Data, Window, Win, Count + 1, Acc);
                W1 when W1 >= Rounds ->
                    Counts = lists:reverse([Count | Acc]),
                    Counts ++ [0 || _ <- lists:seq(length(Counts) + 1, Rounds)];
                W1 -> loop(Op, Ids, N, Next, Data, Window, W1, 1, [0 || _ <- lists:seq(Win + 2, W1)] ++ [Count | Acc])
            end
    end.

transpose([[] | _]) -> [];
transpose(Rows) -> [[hd(R) || R <- Rows] | transpose([tl(R) || R <- Rows])].

run_op(get_direct, Id, _Data) -> erl_peb:get(Id);
run_op(get_call, Id, _Data) -> erl_peb:call({get, Id});
run_op(set, Id, Data) ->
    {ok, V} = erl_peb:set(Id, Data, default),
    {ok, Data, 0, V}.

%% --- memory --------------------------------------------------------------------------------------

%% Memory of the session table per stored session: N sessions with a payload of this Kind
%% written through the server into an emptied table. Two parts: the table itself
%% (ets:info / mnesia:table_info memory, in words) and the reference-counted binaries it points
%% to (erlang:memory(binary), after a garbage collection of every process, so that only the
%% table's references keep them).
-spec memory(session | binary, pos_integer()) -> map().
memory(Kind, N) ->
    ok = erl_peb:clear(),
    {T0, B0} = footprint(),
    parallel(16, fun(W) ->
        [{ok, _} = erl_peb:set(id(<<"mem_">>, I), payload(Kind), default) || I <- lists:seq(W, N, 16)],
        ok
    end),
    {T1, B1} = footprint(),
    {ok, #{stored := Stored}} = erl_peb:status(),
    ok = erl_peb:clear(),
    #{payload => Kind, sessions => Stored,
      payload_bytes => byte_size(term_to_binary(payload(Kind))),
      empty_table_bytes => T0,
      table_bytes_per_session => (T1 - T0) / N,
      binary_bytes_per_session => (B1 - B0) / N,
      total_bytes_per_session => (T1 - T0 + B1 - B0) / N}.

footprint() ->
    %% Mnesia's log holds written records in buffers for a while: flush them first.
    case erl_peb_session_server:store() of
        {erl_peb_store_mnesia, _} -> dumped = mnesia:dump_log();
        _ -> ok
    end,
    {table_words() * erlang:system_info(wordsize), settled_binary_memory(undefined, 20)}.

%% erlang:memory(binary) once two readings 50 ms apart agree (binaries of a table just
%% cleared may still be being freed).
settled_binary_memory(Last, 0) ->
    Last;
settled_binary_memory(Last, Tries) ->
    [erlang:garbage_collect(P) || P <- processes()],
    case erlang:memory(binary) of
        Last -> Last;
        B -> timer:sleep(50), settled_binary_memory(B, Tries - 1)
    end.

table_words() ->
    {Mod, #{table := T}} = erl_peb_session_server:store(),
    case Mod of
        erl_peb_store_ets -> ets:info(T, memory);
        erl_peb_store_mnesia -> mnesia:table_info(T, memory)
    end.

stored() ->
    {Mod, #{table := T}} = erl_peb_session_server:store(),
    case Mod of
        erl_peb_store_ets -> ets:info(T, size);
        erl_peb_store_mnesia -> mnesia:table_info(T, size)
    end.

%% --- sweep ---------------------------------------------------------------------------------------

%% Times the server's periodic sweep (its own process, its configured interval and batch) over
%% Expired sessions, with the live sessions of populate/2 in the table, and the latency of reads of
%% the live sessions from other processes while it runs and while nothing runs.
%%
%% The expired sessions are written straight into the table in chunks (ETS: ets:insert; Mnesia:
%% sync_dirty writes), which is how they get there fast, not a path being measured. They all
%% expire at one moment ExpireAt, chosen after the end of the writing (from the rate of a first
%% chunk) so that no pass removes any of them early: the first pass to start after ExpireAt
%% removes all of them. `expired_to_removed_ms' runs from ExpireAt (or the end of the writing,
%% when that came later: `late') until the table holds only the live sessions again: the wait for
%% the next periodic pass plus that pass. `pass_removed' below Expired means that more than one
%% pass took part (a late writing), and `pass_ms' is then the last one's.
-spec sweep(pos_integer()) -> map().
sweep(Expired) ->
    LiveIds = persistent_term:get(?IDS),
    Live = tuple_size(LiveIds),
    {ok, #{sweep_interval := Interval}} = erl_peb:status(),
    {Mod, #{table := T}} = erl_peb_session_server:store(),
    Data = binary_payload(),
    Far = now_ms() + 3600000,
    %% A first chunk gives the writing rate; it is written again with ExpireAt at the end.
    First = min(Expired, 20 * ?CHUNK),
    W0 = erlang:monotonic_time(),
    fill(Mod, T, 1, First, Data, Far),
    FirstMs = ms_since(W0),
    Estimate = FirstMs * (Expired / First) * 1.3 + 300,
    ExpireAt = now_ms() + round(Estimate),
    fill(Mod, T, First + 1, Expired, Data, ExpireAt),
    fill(Mod, T, 1, First, Data, ExpireAt),
    FillMs = ms_since(W0),
    Filled = stored(),
    %% All expired once written and past ExpireAt (the estimate may have been short).
    AllExpired = max(ExpireAt, now_ms()),
    %% Readers from now on; the expiry moment, then the end of the sweep.
    Readers = [start_reader(Path, LiveIds) || Path <- [get_direct, get_call]],
    wait_until(fun() -> now_ms() >= AllExpired end, 5),
    wait_until(fun() -> stored() =< Live end, 5),
    Removed = now_ms(),
    %% The pass that finished is in the server's status (with a small table, a cheap call).
    Pass = wait_for_pass(ExpireAt),
    %% A quiet window after the pass, well before the next one starts.
    Quiet = 1500,
    timer:sleep(200 + Quiet),
    Samples = [stop_reader(R) || R <- Readers],
    #{removed := PassRemoved, duration_ms := PassMs, finished_at := Finished} = Pass,
    PassStart = Finished - PassMs,
    Window = fun(From, To) -> fun({At, _}) -> At >= From andalso At =< To end end,
    Lat = fun(Filter, S) -> [Us || {_, Us} = X <- S, Filter(X)] end,
    Paths = lists:map(
              fun({Path, S}) ->
                      {Path, #{during => Lat(Window(PassStart, Finished), S),
                               idle => Lat(Window(Removed + 200, Removed + 200 + Quiet), S)}}
              end, lists:zip([get_direct, get_call], Samples)),
    #{expired => Expired, live => Live, filled => Filled, fill_ms => FillMs,
      late => AllExpired > ExpireAt, sweep_interval => Interval,
      sweep_batch => application:get_env(erl_peb, sweep_batch, erl_peb_config:default(sweep_batch)),
      pass_removed => PassRemoved, pass_ms => PassMs,
      expired_to_removed_ms => Removed - AllExpired,
      latency_us => maps:from_list(Paths)}.

%% Writes the records From..To straight into the table.
fill(_Mod, _T, From, To, _Data, _Exp) when From > To ->
    ok;
fill(Mod, T, From, To, Data, Exp) ->
    Last = min(To, From + ?CHUNK - 1),
    Now = now_ms(),
    Recs = [#erl_peb_session{id = id(<<"exp_">>, I), data = Data, expires_at = Exp, version = 1,
                             updated_at = Now} || I <- lists:seq(From, Last)],
    case Mod of
        erl_peb_store_ets ->
            true = ets:insert(T, Recs);
        erl_peb_store_mnesia ->
            ok = mnesia:sync_dirty(fun() -> lists:foreach(fun(R) -> mnesia:write(T, R, write) end, Recs) end)
    end,
    fill(Mod, T, Last + 1, To, Data, Exp).

wait_for_pass(ExpireAt) ->
    {ok, #{last_sweep := Last}} = erl_peb:status(),
    case Last of
        #{finished_at := F, removed := R} when F > ExpireAt, R > 0 -> Last;
        _ -> timer:sleep(20), wait_for_pass(ExpireAt)
    end.

%% A reader: a get of a random live session every READ_PACE_MS, each timed; keeps
%% {SystemTimeMs, Microseconds}.
start_reader(Path, Ids) ->
    Parent = self(),
    spawn_link(fun() -> reader(Path, Ids, Parent, []) end).

reader(Path, Ids, Parent, Acc) ->
    Id = element(rand:uniform(tuple_size(Ids)), Ids),
    T0 = erlang:monotonic_time(),
    {ok, _, _, _} = run_op(Path, Id, none),
    Us = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / 1000,
    Acc1 = [{now_ms(), Us} | Acc],
    receive
        {stop, Parent} -> Parent ! {samples, self(), lists:reverse(Acc1)}
    after ?READ_PACE_MS ->
        reader(Path, Ids, Parent, Acc1)
    end.

stop_reader(Pid) ->
    Pid ! {stop, self()},
    receive {samples, Pid, S} -> S end.

wait_until(Fun, PollMs) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(PollMs), wait_until(Fun, PollMs)
    end.

%% --- helpers -------------------------------------------------------------------------------------

%% Runs Fun(1..N) in N processes started together; returns their results in order.
parallel(N, Fun) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> Parent ! {done, self(), Fun(W)} end) || W <- lists:seq(1, N)],
    [receive {done, P, R} -> R end || P <- Pids].

now_ms() -> erlang:system_time(millisecond).

ms_since(T0) ->
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1000.

%% JSON for the script: maps with atom keys, lists, numbers, booleans, atoms as strings.
-spec json(term()) -> binary().
json(Term) -> iolist_to_binary(j(Term)).

j(true) -> <<"true">>;
j(false) -> <<"false">>;
j(A) when is_atom(A) -> [$", atom_to_binary(A), $"];
j(I) when is_integer(I) -> integer_to_binary(I);
j(F) when is_float(F) -> float_to_binary(F, [short]);
j(B) when is_binary(B) -> [$", B, $"];
j(L) when is_list(L) -> [$[, lists:join($,, [j(X) || X <- L]), $]];
j(M) when is_map(M) ->
    [${, lists:join($,, [[j(K), $:, j(V)] || {K, V} <- lists:sort(maps:to_list(M))]), $}].
