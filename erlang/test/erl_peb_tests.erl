%% The behaviour suite of the session server, run once against each backend: ETS and Mnesia
%% (ram_copies, on this one node).
-module(erl_peb_tests).

-include_lib("eunit/include/eunit.hrl").

-export([start/2, eventually/2, wait_past/1]).

-define(TTL, 60000).

%% --- fixtures --------------------------------------------------------------------------------

behaviour_test_() ->
    [suite(ets), suite(mnesia)].

suite(Backend) ->
    {setup,
     fun() -> start(Backend, #{sweep_interval => infinity}) end,
     fun(_) -> erl_peb:stop() end,
     fun(_) ->
             [{lists:flatten(io_lib:format("~p: ~s", [Backend, Name])), {timeout, Timeout, fun() -> ok = erl_peb:clear(), Test() end}}
              || {Name, Timeout, Test} <- cases(Backend)]
     end}.

cases(Backend) ->
    [{"set then get gives the data, its expiry and version 1", 5, fun set_get/0},
     {"a server answers get calls the way get/1 reads", 5, fun get_call/0},
     {"unknown and destroyed sessions are not_found", 5, fun destroy/0},
     {"every write bumps the version; compare-and-set refuses a stale version", 5, fun cas/0},
     {"an expired session is never returned, even before the sweep", 5, fun expiry/0},
     {"touch extends the expiry and keeps the version", 5, fun touch/0},
     {"ids and all page through a large store in id order, skipping expired", 30, fun paging/0},
     {"clear removes everything", 5, fun clear/0},
     {"lock, unlock and tokens", 5, fun lock_basics/0},
     {"waiters get the lock in the order they asked", 10, fun lock_fifo/0},
     {"a waiter whose wait runs out gets timeout", 5, fun lock_wait_timeout/0},
     {"a lease ends after its time", 10, fun lock_lease_expiry/0},
     {"a lease ends when its holder dies", 10, fun lock_holder_death/0},
     {"50 processes incrementing one counter under the lock lose no update", 60, fun lock_counter/0},
     {"malformed requests get an error and the server stays up", 5, fun bad_requests/0},
     {"status gives node, backend, session count and members", 5, fun() -> status(Backend) end},
     {"sessions survive a restart of the server process", 10, fun server_restart/0},
     {"no atom is created by 100,000 sessions with random ids", 60, fun atoms/0}].

-spec start(ets | mnesia, map()) -> ets | mnesia.
start(Backend, Extra) ->
    _ = erl_peb:stop(),
    Options = maps:merge(#{backend => Backend, copies => ram_copies, default_ttl => ?TTL,
                           sweep_interval => infinity, sweep_batch => 1000}, Extra),
    ok = erl_peb:start_server(Options),
    ok = erl_peb:clear(),
    Backend.

%% Polls until Fun() is true: for conditions another process brings about.
-spec eventually(fun(() -> boolean()), pos_integer()) -> ok.
eventually(Fun, TimeoutMs) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    eventually_loop(Fun, Deadline).

eventually_loop(Fun, Deadline) ->
    case Fun() of
        true -> ok;
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> erlang:error(condition_not_met);
                false -> timer:sleep(5), eventually_loop(Fun, Deadline)
            end
    end.

%% Waits for the wall clock to pass an expiry time: what makes a session expire.
-spec wait_past(integer()) -> ok.
wait_past(ExpiresAt) ->
    timer:sleep(max(0, ExpiresAt - erlang:system_time(millisecond)) + 2).

now_ms() -> erlang:system_time(millisecond).

%% --- sessions --------------------------------------------------------------------------------

set_get() ->
    Data = #{<<"user">> => <<"ada">>, <<"visits">> => 3, <<"cart">> => [#{<<"sku">> => 1}]},
    Before = now_ms(),
    ?assertEqual({ok, 1}, erl_peb:set(<<"s1">>, Data, 10000)),
    {ok, Got, Exp, 1} = erl_peb:get(<<"s1">>),
    ?assertEqual(Data, Got),
    ?assertEqual(<<"ada">>, maps:get(<<"user">>, Got)),
    ?assert(Exp >= Before + 10000 andalso Exp =< now_ms() + 10000),
    ?assertMatch({ok, _}, erl_peb:set(<<"forever">>, x, infinity)),
    ?assertMatch({ok, x, infinity, 1}, erl_peb:get(<<"forever">>)),
    {ok, 1} = erl_peb:set(<<"dflt">>, y),
    {ok, y, DefaultExp, 1} = erl_peb:get(<<"dflt">>),
    ?assert(DefaultExp >= Before + ?TTL).

get_call() ->
    {ok, 1} = erl_peb:set(<<"s">>, [1, 2, 3], 10000),
    ?assertEqual(erl_peb:get(<<"s">>), erl_peb:call({get, <<"s">>})),
    ?assertEqual(not_found, erl_peb:call({get, <<"nope">>})).

destroy() ->
    ?assertEqual(not_found, erl_peb:get(<<"nope">>)),
    ?assertEqual(ok, erl_peb:destroy(<<"nope">>)),
    {ok, 1} = erl_peb:set(<<"d">>, x, 10000),
    ?assertEqual(ok, erl_peb:destroy(<<"d">>)),
    ?assertEqual(not_found, erl_peb:get(<<"d">>)),
    ?assertEqual({ok, 0}, erl_peb:count()).

cas() ->
    ?assertEqual({ok, 1}, erl_peb:set(<<"c">>, a, 10000, 0)),
    ?assertEqual({conflict, 1}, erl_peb:set(<<"c">>, b, 10000, 0)),
    ?assertEqual({ok, 2}, erl_peb:set(<<"c">>, b, 10000, 1)),
    ?assertEqual({conflict, 2}, erl_peb:set(<<"c">>, lost, 10000, 1)),
    ?assertMatch({ok, b, _, 2}, erl_peb:get(<<"c">>)),
    ?assertEqual({ok, 3}, erl_peb:set(<<"c">>, c, 10000)),
    ?assertEqual({conflict, 0}, erl_peb:set(<<"none">>, x, 10000, 5)),
    %% An expired session is no session: version 0 again.
    {ok, 1} = erl_peb:set(<<"e">>, x, 20),
    {ok, _, Exp, _} = erl_peb:get(<<"e">>),
    wait_past(Exp),
    ?assertEqual({ok, 1}, erl_peb:set(<<"e">>, y, 10000, 0)).

expiry() ->
    {ok, 1} = erl_peb:set(<<"short">>, x, 30),
    {ok, 1} = erl_peb:set(<<"long">>, y, 60000),
    {ok, x, Exp, 1} = erl_peb:get(<<"short">>),
    wait_past(Exp),
    %% The sweep is off in this suite: the record is still in the table, yet never returned.
    {ok, #{stored := 2}} = erl_peb:status(),
    ?assertEqual(not_found, erl_peb:get(<<"short">>)),
    ?assertEqual(not_found, erl_peb:call({get, <<"short">>})),
    ?assertEqual(not_found, erl_peb:touch(<<"short">>, 60000)),
    ?assertEqual({ok, 1}, erl_peb:count()),
    ?assertEqual({ok, [<<"long">>], done}, erl_peb:ids(first, 10)),
    ?assertMatch({ok, [{<<"long">>, y, _, 1}], done}, erl_peb:all(first, 10)),
    ?assertEqual({ok, 1}, erl_peb:sweep()),
    {ok, #{stored := 1, sessions := 1}} = erl_peb:status(),
    ?assertMatch({ok, y, _, 1}, erl_peb:get(<<"long">>)).

touch() ->
    {ok, 1} = erl_peb:set(<<"t">>, x, 50),
    {ok, x, Exp1, 1} = erl_peb:get(<<"t">>),
    {ok, Exp2} = erl_peb:touch(<<"t">>, 60000),
    ?assert(Exp2 > Exp1),
    wait_past(Exp1),
    ?assertEqual({ok, x, Exp2, 1}, erl_peb:get(<<"t">>)),
    ?assertEqual({ok, infinity}, erl_peb:touch(<<"t">>, infinity)),
    ?assertEqual(not_found, erl_peb:touch(<<"missing">>, 1000)).

paging() ->
    Live = [iolist_to_binary(io_lib:format("live-~5..0b", [I])) || I <- lists:seq(1, 2500)],
    Dead = [iolist_to_binary(io_lib:format("dead-~5..0b", [I])) || I <- lists:seq(1, 300)],
    parallel_writes(Dead, 20, 8),
    parallel_writes(Live, 60000, 8),
    wait_past(now_ms() + 20),
    ?assertEqual({ok, 2500}, erl_peb:count()),
    {IdPages, Ids} = collect(fun(C) -> erl_peb:ids(C, 1000) end),
    ?assertEqual(lists:sort(Live), Ids),
    ?assert(IdPages >= 3),
    {_, All} = collect(fun(C) -> erl_peb:all(C, 700) end),
    ?assertEqual(lists:sort(Live), [Id || {Id, _, _, _} <- All]),
    ?assert(lists:all(fun({Id, Data, _, 1}) -> Data =:= Id end, All)).

collect(Page) ->
    collect(Page, first, 0, []).

collect(Page, Cursor, N, Acc) ->
    {ok, Items, Next} = Page(Cursor),
    case Next of
        done -> {N + 1, lists:append(lists:reverse([Items | Acc]))};
        _ -> collect(Page, Next, N + 1, [Items | Acc])
    end.

%% Writes each id with itself as data, from Procs processes at once.
parallel_writes(Ids, Ttl, Procs) ->
    Self = self(),
    Chunks = chunks(Ids, Procs),
    Pids = [spawn_link(fun() ->
                               [{ok, _} = erl_peb:set(Id, Id, Ttl) || Id <- Chunk],
                               Self ! {written, self()}
                       end) || Chunk <- Chunks],
    [receive {written, P} -> ok end || P <- Pids],
    ok.

chunks(List, N) ->
    Size = max(1, (length(List) + N - 1) div N),
    chunk(List, Size).

chunk([], _) -> [];
chunk(List, Size) when length(List) =< Size -> [List];
chunk(List, Size) ->
    {H, T} = lists:split(Size, List),
    [H | chunk(T, Size)].

clear() ->
    parallel_writes([integer_to_binary(I) || I <- lists:seq(1, 100)], 60000, 4),
    ?assertEqual({ok, 100}, erl_peb:count()),
    ?assertEqual(ok, erl_peb:clear()),
    ?assertEqual({ok, 0}, erl_peb:count()),
    ?assertEqual({ok, [], done}, erl_peb:ids(first, 10)).

%% --- lock leases -----------------------------------------------------------------------------

%% A process that takes the lock and keeps it until told; returns its pid and token.
holder(Id, LeaseMs) ->
    Self = self(),
    Pid = spawn(fun() ->
                        {ok, Token} = erl_peb:lock(Id, LeaseMs, 0),
                        Self ! {locked, self(), Token},
                        receive
                            unlock -> Self ! {unlocked, self(), erl_peb:unlock(Id, Token)};
                            exit -> ok
                        end
                end),
    receive {locked, Pid, Token} -> {Pid, Token} after 5000 -> erlang:error(no_lock) end.

waiting() ->
    {ok, #{waiting := N}} = erl_peb:status(),
    N.

lock_basics() ->
    {ok, T1} = erl_peb:lock(<<"L">>, 10000, 0),
    ?assert(is_binary(T1)),
    ?assertEqual(timeout, erl_peb:lock(<<"L">>, 10000, 0)),
    ?assertMatch({ok, _}, erl_peb:lock(<<"other">>, 10000, 0)),
    ?assertEqual(not_held, erl_peb:unlock(<<"L">>, <<"not the token">>)),
    ?assertEqual(ok, erl_peb:unlock(<<"L">>, T1)),
    ?assertEqual(not_held, erl_peb:unlock(<<"L">>, T1)),
    {ok, T2} = erl_peb:lock(<<"L">>, 10000, 0),
    ?assertNotEqual(T1, T2),
    ?assertEqual(ok, erl_peb:unlock(<<"L">>, T2)),
    ?assertEqual({ok, done}, erl_peb:with_lock(<<"L">>, 1000, 1000, fun() -> done end)),
    ?assertMatch({ok, _}, erl_peb:lock(<<"L">>, 10000, 0)).

lock_fifo() ->
    Id = <<"fifo">>,
    {Holder, _} = holder(Id, 60000),
    Self = self(),
    Waiters = [begin
                   P = spawn(fun() ->
                                     {ok, T} = erl_peb:lock(Id, 60000, 20000),
                                     Self ! {got, I},
                                     ok = erl_peb:unlock(Id, T)
                             end),
                   ok = eventually(fun() -> waiting() =:= I end, 5000),
                   P
               end || I <- lists:seq(1, 5)],
    ?assertEqual(5, length(Waiters)),
    Holder ! unlock,
    receive {unlocked, Holder, ok} -> ok after 5000 -> erlang:error(no_unlock) end,
    Order = [receive {got, I} -> I after 10000 -> erlang:error(waiter_starved) end || _ <- lists:seq(1, 5)],
    ?assertEqual([1, 2, 3, 4, 5], Order).

lock_wait_timeout() ->
    Id = <<"busy">>,
    {Holder, _} = holder(Id, 60000),
    ?assertEqual(timeout, erl_peb:lock(Id, 1000, 100)),
    ?assertEqual(0, waiting()),
    Holder ! exit.

lock_lease_expiry() ->
    Id = <<"lease">>,
    %% The holder stays alive and never unlocks: only the lease's end frees the lock.
    {Holder, OldToken} = holder(Id, 200),
    ?assertMatch({ok, _}, erl_peb:lock(Id, 60000, 8000)),
    ?assertEqual(not_held, erl_peb:unlock(Id, OldToken)),
    Holder ! exit.

lock_holder_death() ->
    Id = <<"dies">>,
    %% A lease of ten minutes: the waiter gets the lock within its 8 s only through the death.
    {Holder, _} = holder(Id, 600000),
    Self = self(),
    spawn(fun() -> Self ! {waiter, erl_peb:lock(Id, 60000, 8000)} end),
    ok = eventually(fun() -> waiting() =:= 1 end, 5000),
    exit(Holder, kill),
    receive {waiter, Reply} -> ?assertMatch({ok, _}, Reply) after 10000 -> erlang:error(no_reply) end.

lock_counter() ->
    Id = <<"counter">>,
    {ok, 1} = erl_peb:set(Id, 0, 60000),
    Self = self(),
    Clients = 50,
    Rounds = 20,
    Pids = [spawn_link(fun() ->
                               [{ok, _} = erl_peb:with_lock(Id, 10000, 30000, fun() -> increment(Id) end)
                                || _ <- lists:seq(1, Rounds)],
                               Self ! {done, self()}
                       end) || _ <- lists:seq(1, Clients)],
    [receive {done, P} -> ok end || P <- Pids],
    {ok, Count, _, Version} = erl_peb:get(Id),
    ?assertEqual(Clients * Rounds, Count),
    ?assertEqual(Clients * Rounds + 1, Version).

increment(Id) ->
    {ok, N, _, V} = erl_peb:get(Id),
    {ok, _} = erl_peb:set(Id, N + 1, 60000, V).

%% --- robustness and reporting ----------------------------------------------------------------

bad_requests() ->
    Server = whereis(erl_peb:server()),
    Bad = [{get, 42}, {get, "a string id"}, {set, <<"x">>, d, -1}, {set, <<"x">>, d, 0},
           {set, <<"x">>, d, soon}, {set, <<"x">>, d, 100, -1}, {touch, <<"x">>, 0},
           {ids, 3, 10}, {ids, first, 0}, {all, first, -1}, {lock, <<"x">>, 0, 0},
           {lock, <<"x">>, 100, -1}, {lock, <<"x">>, 1 bsl 40, 0}, {unlock, <<"x">>, 1}, {gc, -1},
           {destroy, x}],
    [?assertEqual({error, badarg}, erl_peb:call(R)) || R <- Bad],
    [?assertEqual({error, unknown_request}, erl_peb:call(R)) || R <- [hello, {}, {what, 1}, <<"x">>, []]],
    ?assertEqual(Server, whereis(erl_peb:server())),
    ?assertEqual({ok, 1}, erl_peb:set(<<"x">>, d, 1000)).

status(Backend) ->
    {ok, 1} = erl_peb:set(<<"a">>, 1, 60000),
    {ok, 1} = erl_peb:set(<<"b">>, 2, 60000),
    {ok, S} = erl_peb:status(),
    ?assertMatch(#{node := _, backend := Backend, sessions := 2, members := [_ | _], running := [_ | _]}, S),
    ?assertEqual(node(), maps:get(node, S)),
    ?assert(lists:member(node(), maps:get(members, S))).

server_restart() ->
    {ok, 1} = erl_peb:set(<<"kept">>, x, 60000),
    Old = whereis(erl_peb:server()),
    exit(Old, kill),
    %% The name is registered before init runs: ready is when the supervisor has the new child.
    ok = eventually(fun() -> case restarted_server() of Pid when is_pid(Pid) -> Pid =/= Old; _ -> false end end, 5000),
    ?assertMatch({ok, x, _, 1}, erl_peb:call({get, <<"kept">>})),
    ?assertEqual({ok, 2}, erl_peb:set(<<"kept">>, y, 60000)).

restarted_server() ->
    hd([Pid || {erl_peb_session_server, Pid, _, _} <- supervisor:which_children(erl_peb_sup)]).

atoms() ->
    %% Every code path runs once first, so that loading modules does not count.
    Warm = [<<"warm">>, "warm"],
    [begin
         {ok, _} = erl_peb:set(<<"warm">>, x, 60000),
         _ = erl_peb:call({get, <<"warm">>}),
         ok = session_handler:write(W, W),
         _ = session_handler:read(W)
     end || W <- Warm],
    Before = erlang:system_info(atom_count),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               [begin
                                    Id = random_id(),
                                    {ok, 1} = erl_peb:set(Id, #{Id => Id}, 60000),
                                    {ok, _, _, _} = erl_peb:call({get, Id}),
                                    not_found = erl_peb:get(random_id())
                                end || _ <- lists:seq(1, 12500)],
                               [begin
                                    Id = binary_to_list(random_id()),
                                    ok = session_handler:write(Id, Id),
                                    Bin = list_to_binary(Id),
                                    Bin = session_handler:read(Id)
                                end || _ <- lists:seq(1, 500)],
                               Self ! {done, self()}
                       end) || _ <- lists:seq(1, 8)],
    [receive {done, P} -> ok end || P <- Pids],
    {ok, Count} = erl_peb:count(),
    ?assert(Count >= 100000),
    ?assertEqual(Before, erlang:system_info(atom_count)).

random_id() ->
    binary:encode_hex(crypto:strong_rand_bytes(12)).
