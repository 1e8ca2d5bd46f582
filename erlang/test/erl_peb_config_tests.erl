%% Starting with good and bad configuration.
-module(erl_peb_config_tests).

-include_lib("eunit/include/eunit.hrl").

config_test_() ->
    {setup,
     fun() -> _ = erl_peb:stop() end,
     fun(_) -> _ = erl_peb:stop() end,
     [{"start_server/1 refuses unknown options and bad values",
       fun() ->
               ?assertEqual({error, {unknown_option, colour}}, erl_peb:start_server(#{colour => blue})),
               ?assertEqual({error, {bad_option, backend, redis}}, erl_peb:start_server(#{backend => redis})),
               ?assertEqual({error, {bad_option, copies, disc_only_copies}},
                            erl_peb:start_server([{copies, disc_only_copies}])),
               ?assertEqual({error, {bad_option, default_ttl, 0}}, erl_peb:start_server(#{default_ttl => 0})),
               ?assertEqual(undefined, whereis(erl_peb:server()))
       end},
      {"a Mnesia backend that cannot join its cluster does not start, and says why",
       fun() ->
               ?assertEqual({error, {join_failed, [{'nobody@127.0.0.1', {unreachable, 'nobody@127.0.0.1'}}]}},
                            erl_peb:start_server(#{backend => mnesia, join => 'nobody@127.0.0.1'})),
               application:set_env(erl_peb, join, [])
       end},
      {"a bad value in the application environment stops the start with its key",
       fun() ->
               _ = application:load(erl_peb),
               ok = application:set_env(erl_peb, sweep_batch, -3),
               try
                   ?assertEqual({error, {bad_config, sweep_batch, -3}}, erl_peb:start())
               after
                   application:unset_env(erl_peb, sweep_batch)
               end
       end},
      {"the sweep batch follows the backend unless it is set",
       fun() ->
               _ = application:load(erl_peb),
               Batch = fun(Backend) ->
                               ok = application:set_env(erl_peb, backend, Backend),
                               {ok, #{sweep_batch := B}} = erl_peb_config:load(),
                               B
                       end,
               try
                   ?assertEqual(100, Batch(ets)),
                   ?assertEqual(1000, Batch(mnesia)),
                   ok = application:set_env(erl_peb, sweep_batch, 7),
                   ?assertEqual(7, Batch(mnesia))
               after
                   application:unset_env(erl_peb, sweep_batch),
                   application:unset_env(erl_peb, backend)
               end
       end},
      {"start_server/1 while running says so",
       fun() ->
               ok = erl_peb:start_server(#{backend => ets}),
               ?assertEqual(ok, erl_peb:start()),
               ?assertEqual({error, already_started}, erl_peb:start_server(#{backend => ets})),
               ?assertEqual({error, {not_clustered, ets}}, erl_peb:join('other@127.0.0.1')),
               ok = erl_peb:stop()
       end}]}.
