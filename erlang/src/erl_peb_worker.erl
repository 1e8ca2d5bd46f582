%% A worker of the session server: runs the writes the server hands it, one at a time, so that the
%% writes for one session id (always given to the same worker) stay in the order they arrived,
%% while the server itself goes on answering reads.
-module(erl_peb_worker).

-export([start_link/0, run/1]).

-spec start_link() -> pid().
start_link() ->
    proc_lib:spawn_link(fun loop/0).

loop() ->
    receive
        %% Answer the caller directly.
        {reply, From, Fun} ->
            gen_server:reply(From, run(Fun)),
            loop();
        %% Hand the result back to the server, which continues from it.
        {exec, Server, Tag, Fun} ->
            Server ! {exec_done, Tag, run(Fun)},
            loop()
    end.

%% A crash in a backend becomes an error reply: one bad request must not take the others down.
-spec run(fun(() -> Result)) -> Result | {error, term()}.
run(Fun) ->
    try
        Fun()
    catch
        Class:Reason:Stack ->
            logger:error("erl_peb: a storage operation failed: ~p:~p ~p", [Class, Reason, Stack]),
            {error, {Class, Reason}}
    end.
