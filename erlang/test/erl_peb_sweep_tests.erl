%% The periodic expiry sweep, against each backend.
-module(erl_peb_sweep_tests).

-include_lib("eunit/include/eunit.hrl").

sweep_test_() ->
    [sweep(ets), sweep(mnesia)].

sweep(Backend) ->
    {setup,
     fun() -> erl_peb_tests:start(Backend, #{sweep_interval => 50, sweep_batch => 7}) end,
     fun(_) -> erl_peb:stop() end,
     fun(_) ->
             [{lists:flatten(io_lib:format("~p: ~s", [Backend, Name])), {timeout, 30, Test}}
              || {Name, Test} <- [{"the sweep removes expired sessions, in batches, and only those",
                                   fun removes_expired/0},
                                  {"a session renewed after the scan saw it expired is kept",
                                   fun renewed_is_kept/0}]]
     end}.

removes_expired() ->
    ok = erl_peb:clear(),
    Short = [<<"short-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 200)],
    Long = [<<"long-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 10)],
    [{ok, 1} = erl_peb:set(Id, x, 30) || Id <- Short],
    [{ok, 1} = erl_peb:set(Id, y, 60000) || Id <- Long],
    erl_peb_tests:wait_past(erlang:system_time(millisecond) + 30),
    ok = erl_peb_tests:eventually(fun() -> stored() =:= 10 end, 20000),
    [?assertMatch({ok, y, _, 1}, erl_peb:get(Id)) || Id <- Long],
    {ok, #{last_sweep := Last}} = erl_peb:status(),
    ?assertMatch(#{removed := _, duration_ms := _}, Last).

renewed_is_kept() ->
    ok = erl_peb:clear(),
    {Mod, Ref} = erl_peb_session_server:store(),
    {ok, 1} = erl_peb:set(<<"r">>, old, 20),
    {ok, _, Exp, _} = erl_peb:get(<<"r">>),
    erl_peb_tests:wait_past(Exp),
    Pred = {expired, erlang:system_time(millisecond)},
    %% The scan finds it expired; then it is written again; the delete must leave it.
    {Found, _} = Mod:scan(Ref, start, Pred, 100),
    ?assert(lists:member(<<"r">>, Found)),
    {ok, 1} = erl_peb:set(<<"r">>, new, 60000),
    ?assertEqual(0, Mod:delete_matching(Ref, [<<"r">>], Pred)),
    ?assertMatch({ok, new, _, 1}, erl_peb:get(<<"r">>)).

stored() ->
    {ok, #{stored := N}} = erl_peb:status(),
    N.
